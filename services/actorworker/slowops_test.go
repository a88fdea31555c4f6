package actorworker

import (
	"errors"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/scoped"
	"github.com/gnome-platform/gnome/libs/store"
)

// The worker keeps the data operations of its scopes that took
// store.SlowCommand or longer, per experiment, and only those.
func TestSlowDataOperationsAreRecordedPerExperiment(t *testing.T) {
	w := newWorld(t)
	s := w.worker()
	ctx := ctxT(t)
	observe := s.slow.observe(s.d.Log)
	observe(ctx, scoped.Op{Slug: "exp-a", Collection: "clicks", Name: scoped.OpFind, Duration: store.SlowCommand / 2, Documents: 1})
	observe(ctx, scoped.Op{Slug: "exp-a", Collection: "clicks", Name: scoped.OpAggregate, Duration: store.SlowCommand + 20*time.Millisecond, Documents: 8})
	observe(ctx, scoped.Op{Slug: "exp-b", From: "exp-a", Collection: "clicks", Name: scoped.OpCount, Duration: 2 * store.SlowCommand,
		Err: apierr.Wrap(apierr.CodeTimeout, errors.New("deadline"), "the count did not finish in time")})
	var a, b []store.SlowOp
	eventually(t, 10*time.Second, "both slow operations recorded", func() bool {
		var err error
		if a, err = s.d.Store.SlowOps(ctx, "exp-a"); err != nil {
			t.Fatal(err)
		}
		if b, err = s.d.Store.SlowOps(ctx, "exp-b"); err != nil {
			t.Fatal(err)
		}
		return len(a) > 0 && len(b) > 0
	})
	if len(a) != 1 || a[0].Op != scoped.OpAggregate || a[0].Collection != "clicks" || a[0].DurationMS != 120 || a[0].Documents != 8 || a[0].At.IsZero() {
		t.Errorf("exp-a's slow operations = %+v, want the aggregate alone", a)
	}
	if len(b) != 1 || b[0].From != "exp-a" || b[0].Error != string(apierr.CodeTimeout) {
		t.Errorf("exp-b's slow operations = %+v, want the failed count of exp-a's clicks", b)
	}
}
