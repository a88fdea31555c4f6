package bus

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/telemetry"
)

// Event is one stream message, decoded.
type Event[T any] struct {
	Subject string
	Data    T
	// Time is when the stream stored the message.
	Time time.Time
}

// FollowOptions say what a follower reads and how.
type FollowOptions struct {
	Stream   string
	Subjects []string
	// Durable, when set, is a consumer shared by every instance of the
	// service (its FilterSubjects are Subjects): each message is handled
	// once by some instance, acknowledged when the handler succeeds, and
	// delivered again after Retry when it fails; an undecodable message is
	// dropped. When nil, the follower is an ordered consumer of this
	// process's own that starts at new messages: every instance sees every
	// message, and a failure is logged, not retried.
	Durable *jetstream.ConsumerConfig
	// Retry is the wait before a failed message comes again (durable only).
	Retry time.Duration
	// Timeout bounds one handler call.
	Timeout time.Duration
	Log     *slog.Logger
}

// Follower is a running follower of a stream.
type Follower struct {
	cc jetstream.ConsumeContext
	// The follower counts its handlers itself: a consume context's Closed
	// may come before the callback in progress has returned (an ordered
	// consumer's does), and Stop promises that none runs after it.
	mu       sync.Mutex
	stopped  bool
	handlers sync.WaitGroup
}

// enter reports whether a message may be handled, counting it until
// leave; none may once Stop has begun.
func (f *Follower) enter() bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.stopped {
		return false
	}
	f.handlers.Add(1)
	return true
}

// Stop ends the follower; a message being handled finishes (a durable's
// unacknowledged ones come again), and none is handled after it. It waits
// for that within ctx.
func (f *Follower) Stop(ctx context.Context) {
	f.mu.Lock()
	f.stopped = true
	f.mu.Unlock()
	f.cc.Stop()
	done := make(chan struct{})
	go func() {
		<-f.cc.Closed()
		f.handlers.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
}

// Follow calls fn for each message on o.Subjects of o.Stream, decoded from
// JSON as T, in a context derived from base that carries the trace context
// and request ID of whoever published it. It returns once the consumer
// exists, so that no message published afterwards is missed.
func Follow[T any](ctx, base context.Context, js jetstream.JetStream, o FollowOptions, fn func(ctx context.Context, ev Event[T]) error) (*Follower, error) {
	if o.Log == nil {
		o.Log = slog.Default()
	}
	var cons jetstream.Consumer
	// Made at start, like the streams: retried while JetStream cannot
	// answer yet (a cluster starting with its services).
	err := Retry(ctx, "consumer", o.Stream, func(ctx context.Context) error {
		var err error
		if o.Durable != nil {
			cfg := *o.Durable
			cfg.FilterSubjects = o.Subjects
			cons, err = js.CreateOrUpdateConsumer(ctx, o.Stream, cfg)
		} else {
			cons, err = js.OrderedConsumer(ctx, o.Stream, jetstream.OrderedConsumerConfig{
				FilterSubjects: o.Subjects, DeliverPolicy: jetstream.DeliverNewPolicy,
			})
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("follow %v on %s: %w", o.Subjects, o.Stream, err)
	}
	durable := o.Durable != nil
	f := &Follower{}
	cc, err := cons.Consume(func(msg jetstream.Msg) {
		if !f.enter() {
			return // stopping: a durable's message comes again elsewhere
		}
		defer f.handlers.Done()
		ev := Event[T]{Subject: msg.Subject()}
		if md, err := msg.Metadata(); err == nil {
			ev.Time = md.Timestamp
		}
		if err := json.Unmarshal(msg.Data(), &ev.Data); err != nil {
			o.Log.Warn("unreadable message dropped", "subject", msg.Subject(), "err", err)
			if durable {
				_ = msg.Term()
			}
			return
		}
		hctx, rid := Extract(base, nats.Header(msg.Headers()))
		hctx = telemetry.WithRequestID(hctx, rid)
		if o.Timeout > 0 {
			var cancel context.CancelFunc
			hctx, cancel = context.WithTimeout(hctx, o.Timeout)
			defer cancel()
		}
		if err := fn(hctx, ev); err != nil {
			if durable {
				o.Log.WarnContext(hctx, "handling a message failed; it comes again", "subject", msg.Subject(), "err", err)
				_ = msg.NakWithDelay(o.Retry)
				return
			}
			o.Log.WarnContext(hctx, "handling a message failed", "subject", msg.Subject(), "err", err)
			return
		}
		if durable {
			// The ack has a time of its own: a handler that used most of
			// its Timeout must not see its success delivered again.
			actx, cancel := context.WithTimeout(context.WithoutCancel(hctx), 10*time.Second)
			defer cancel()
			if err := msg.DoubleAck(actx); err != nil {
				o.Log.WarnContext(hctx, "ack failed; the message comes again", "subject", msg.Subject(), "err", err)
			}
		}
	})
	if err != nil {
		return nil, fmt.Errorf("follow %v on %s: %w", o.Subjects, o.Stream, err)
	}
	f.cc = cc
	return f, nil
}

// Publish stores v as JSON on a stream subject under msgID, so that a
// publication retried within the stream's duplicate window is stored once,
// with ctx's trace context and request ID in its headers.
func Publish(ctx context.Context, js jetstream.JetStream, subject, msgID string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", subject, err)
	}
	msg := nats.NewMsg(subject)
	msg.Data = data
	Inject(ctx, msg.Header, telemetry.RequestID(ctx))
	// One operation: OpTimeout at most under ctx's deadline, so that a
	// stream without a leader fails it within seconds.
	ctx, cancel := context.WithTimeout(ctx, OpTimeout)
	defer cancel()
	if _, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID(msgID)); err != nil {
		return fmt.Errorf("publish %s: %w", subject, err)
	}
	return nil
}
