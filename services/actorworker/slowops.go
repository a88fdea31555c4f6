package actorworker

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/scoped"
	"github.com/gnome-platform/gnome/libs/store"
)

// Slow data operations of actors: every operation of an actor's data scope
// that takes store.SlowCommand or longer is logged with the experiment, the
// collection and the operation (the store's own slow-command log knows only
// the command), and kept in the experiment's record of slow operations
// (store.DataSlowOps), which its owner sees on the experiment's page.
// Recording never holds up a call: operations go into a bounded queue that
// one goroutine writes from, and one that finds the queue full is only
// logged.

// slowOpQueue bounds the slow operations waiting to be recorded.
const slowOpQueue = 256

// slowOpWrite bounds one write of the record.
const slowOpWrite = 5 * time.Second

type slowOpItem struct {
	slug string
	op   store.SlowOp
}

// slowOpRecorder records slow data operations; its zero value is ready.
type slowOpRecorder struct {
	once sync.Once
	q    chan slowOpItem
}

func (r *slowOpRecorder) queue() chan slowOpItem {
	r.once.Do(func() { r.q = make(chan slowOpItem, slowOpQueue) })
	return r.q
}

// observe is the scopes' observer (scoped.WithObserver).
func (r *slowOpRecorder) observe(log *slog.Logger) func(ctx context.Context, op scoped.Op) {
	return func(ctx context.Context, op scoped.Op) {
		if op.Duration < store.SlowCommand {
			return
		}
		code := ""
		if op.Err != nil {
			code = string(apierr.From(op.Err).Code)
		}
		log.WarnContext(ctx, "slow data operation", "slug", op.Slug, "collection", op.Collection, "from", op.From,
			"op", op.Name, "duration_ms", op.Duration.Milliseconds(), "documents", op.Documents, "error", code)
		item := slowOpItem{slug: op.Slug, op: store.SlowOp{
			Collection: op.Collection, From: op.From, Op: op.Name, DurationMS: op.Duration.Milliseconds(),
			Documents: op.Documents, Error: code, At: time.Now().UTC().Truncate(time.Millisecond),
		}}
		select {
		case r.queue() <- item:
		default:
		}
	}
}

// run writes queued operations until ctx ends, those of one experiment
// that queued up together in one write.
func (r *slowOpRecorder) run(st *store.Store, log *slog.Logger) func(ctx context.Context) {
	return func(ctx context.Context) {
		q := r.queue()
		for {
			var first slowOpItem
			select {
			case <-ctx.Done():
				return
			case first = <-q:
			}
			batch := map[string][]store.SlowOp{first.slug: {first.op}}
		drain:
			for range slowOpQueue {
				select {
				case it := <-q:
					batch[it.slug] = append(batch[it.slug], it.op)
				default:
					break drain
				}
			}
			for slug, ops := range batch {
				wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), slowOpWrite)
				if err := st.AddSlowOps(wctx, slug, ops...); err != nil {
					log.WarnContext(ctx, "slow data operations not recorded", "slug", slug, "err", err)
				}
				cancel()
			}
		}
	}
}
