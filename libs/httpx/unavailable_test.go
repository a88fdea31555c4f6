package httpx_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http/httptest"
	"sync"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/httpx"
)

// Outages are 503 unavailable with a Retry-After whichever way they reach
// the handler: an error a service returned without one, or a deadline met
// on the way; and the operator's log hears of the cause.
func TestOutagesAre503WithRetryAfter(t *testing.T) {
	var mu sync.Mutex
	var logged []error
	app := fiber.New(fiber.Config{ErrorHandler: httpx.ErrorHandler(func(_ *fiber.Ctx, err error) {
		mu.Lock()
		defer mu.Unlock()
		logged = append(logged, err)
	})})
	app.Get("/from-a-service", func(*fiber.Ctx) error {
		return apierr.FromBody(apierr.BodyError{Code: apierr.CodeUnavailable, Message: "service gnome.upload.process is not available"})
	})
	app.Get("/deadline", func(*fiber.Ctx) error {
		return fmt.Errorf("read staged upload: %w", context.DeadlineExceeded)
	})
	app.Get("/own-estimate", func(*fiber.Ctx) error {
		return &apierr.Error{Code: apierr.CodeUnavailable, Message: "starting", RetryAfter: 1}
	})
	for path, retry := range map[string]string{"/from-a-service": "5", "/deadline": "5", "/own-estimate": "1"} {
		resp, err := app.Test(httptest.NewRequest("GET", path, nil))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		var b apierr.Body
		_ = json.Unmarshal(body, &b)
		if resp.StatusCode != 503 || b.Error.Code != apierr.CodeUnavailable {
			t.Errorf("%s: %d %s, want 503 unavailable", path, resp.StatusCode, body)
		}
		if got := resp.Header.Get("Retry-After"); got != retry {
			t.Errorf("%s: Retry-After %q, want %s", path, got, retry)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(logged) != 1 {
		t.Errorf("logged %v, want the deadline only (the one with a cause)", logged)
	}
}
