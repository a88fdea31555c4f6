package store_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/testenv"
)

// Slow operations are kept per experiment, the last SlowOpsKept, oldest
// first; another experiment's stay apart.
func TestSlowOpsAreBoundedPerExperiment(t *testing.T) {
	s := open(t, testenv.Start(t), prometheus.NewRegistry(), "slowops_test")
	if ops, err := s.SlowOps(ctx(t), "exp-a"); err != nil || len(ops) != 0 {
		t.Fatalf("SlowOps of a new experiment = %v, %v", ops, err)
	}
	at := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	for i := range store.SlowOpsKept + 5 {
		op := store.SlowOp{Collection: "clicks", Op: "find", DurationMS: int64(100 + i), Documents: 1, At: at.Add(time.Duration(i) * time.Second)}
		if err := s.AddSlowOps(ctx(t), "exp-a", op); err != nil {
			t.Fatalf("AddSlowOps %d: %v", i, err)
		}
	}
	if err := s.AddSlowOps(ctx(t), "exp-b", store.SlowOp{Collection: "notes", From: "exp-a", Op: "count", DurationMS: 300, At: at}); err != nil {
		t.Fatal(err)
	}
	ops, err := s.SlowOps(ctx(t), "exp-a")
	if err != nil {
		t.Fatal(err)
	}
	if len(ops) != store.SlowOpsKept {
		t.Fatalf("kept %d, want %d", len(ops), store.SlowOpsKept)
	}
	if got, want := fmt.Sprint(ops[0].DurationMS, ops[len(ops)-1].DurationMS), fmt.Sprint(105, 100+store.SlowOpsKept+4); got != want {
		t.Errorf("kept durations from %s, want %s (the newest)", got, want)
	}
	b, err := s.SlowOps(ctx(t), "exp-b")
	if err != nil || len(b) != 1 || b[0].From != "exp-a" || b[0].Op != "count" || !b[0].At.Equal(at) {
		t.Errorf("exp-b's slow operations = %+v, %v", b, err)
	}
}
