package apierr_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/gnome-platform/gnome/libs/apierr"
)

var errOutage = errors.New("the test's dependency is down")

func init() { apierr.RegisterUnavailable(func(err error) bool { return errors.Is(err, errOutage) }) }

// Outages become unavailable (503, Retry-After) in From, however they were
// wrapped; the request's own faults keep their code.
func TestFromMapsOutagesToUnavailable(t *testing.T) {
	conn, dialErr := net.Dial("tcp", "127.0.0.1:1")
	if dialErr == nil {
		conn.Close()
		t.Skip("something listens on 127.0.0.1:1")
	}
	for _, tc := range []struct {
		name string
		err  error
		want apierr.Code
	}{
		{"a deadline on a dependency", fmt.Errorf("read staged upload: %w", context.DeadlineExceeded), apierr.CodeUnavailable},
		{"a refused connection", fmt.Errorf("call the store: %w", dialErr), apierr.CodeUnavailable},
		{"a registered outage", fmt.Errorf("publish: %w", errOutage), apierr.CodeUnavailable},
		{"an outage wrapped as internal", apierr.Wrap(apierr.CodeInternal, fmt.Errorf("x: %w", context.DeadlineExceeded), "internal error"), apierr.CodeUnavailable},
		{"a conflict stays a conflict", apierr.Wrap(apierr.CodeConflict, context.DeadlineExceeded, "taken"), apierr.CodeConflict},
		{"a bug stays internal", errors.New("nil map"), apierr.CodeInternal},
		{"a cancelled request is no outage", fmt.Errorf("read: %w", context.Canceled), apierr.CodeInternal},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ae := apierr.From(tc.err)
			if ae.Code != tc.want {
				t.Fatalf("From(%v) = %s, want %s", tc.err, ae.Code, tc.want)
			}
			if tc.want == apierr.CodeUnavailable {
				if ae.Code.Status() != 503 || ae.RetryAfter <= 0 {
					t.Errorf("status %d, Retry-After %d; want 503 with a Retry-After", ae.Code.Status(), ae.RetryAfter)
				}
				if !errors.Is(ae, tc.err) && !errors.Is(ae, errors.Unwrap(tc.err)) {
					t.Errorf("the cause is lost: %v", ae)
				}
			}
		})
	}
}
