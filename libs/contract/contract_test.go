package contract_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/contract"
)

// AskAgain repeats an ask only while it got no answer; an answer, even an
// error, ends it, and so does the caller's deadline.
func TestAskAgainRepeatsOnlyUnansweredAsks(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	lost := fmt.Errorf("service did not answer in time: %w", contract.ErrUnanswered)
	var deadlines []time.Duration
	calls := 0
	got, err := contract.AskAgain(ctx, 300*time.Millisecond, func(ctx context.Context) (string, error) {
		calls++
		d, _ := ctx.Deadline()
		deadlines = append(deadlines, time.Until(d))
		if calls < 3 {
			return "", lost
		}
		return "done", nil
	})
	if err != nil || got != "done" || calls != 3 {
		t.Fatalf("got %q, %v after %d calls; want done after 3", got, err, calls)
	}
	for _, d := range deadlines {
		if d > 300*time.Millisecond {
			t.Errorf("an attempt had %v, want at most the attempt's bound", d)
		}
	}

	refused := errors.New("forbidden")
	calls = 0
	_, err = contract.AskAgain(ctx, time.Second, func(context.Context) (string, error) {
		calls++
		return "", refused
	})
	if !errors.Is(err, refused) || calls != 1 {
		t.Fatalf("an answered error: %v after %d calls, want it at once", err, calls)
	}

	short, cancelShort := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancelShort()
	began := time.Now()
	calls = 0
	_, err = contract.AskAgain(short, 100*time.Millisecond, func(ctx context.Context) (string, error) {
		calls++
		<-ctx.Done()
		return "", lost
	})
	if !errors.Is(err, contract.ErrUnanswered) || calls < 2 {
		t.Fatalf("never answered: %v after %d calls, want unanswered after several", err, calls)
	}
	if took := time.Since(began); took > 2*time.Second {
		t.Errorf("gave up after %v, want at the caller's deadline (500ms)", took)
	}
}
