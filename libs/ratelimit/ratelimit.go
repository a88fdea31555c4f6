// Package ratelimit holds request limits exactly across every edge instance:
// each (rule, client) pair is a sliding-window log of accepted requests in a
// JetStream key-value bucket, changed only by compare-and-set, so concurrent
// requests on any number of instances can never admit more than the limit,
// and the counts survive an edge restart.
package ratelimit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/apierr"
)

// Rule is a limit: at most Limit requests in any Window.
type Rule struct {
	Name   string
	Limit  int
	Window time.Duration
}

// The platform's limits (per client IP, and per slug where named).
var (
	LoginPost    = Rule{"login_post", 5, time.Minute}
	LoginPage    = Rule{"login_get", 20, time.Minute}
	RegisterPost = Rule{"register_post", 3, time.Minute}
	RegisterPage = Rule{"register_get", 20, time.Minute}
	Export       = Rule{"export", 10, time.Minute}
	Download     = Rule{"download", 30, time.Minute}
	// Handoff bounds the codes one client can have stored (each lives 30 s):
	// a visitor entering experiments one after another stays far below it.
	Handoff = Rule{"handoff", 120, time.Minute}
)

// Decision is the outcome of one request.
type Decision struct {
	Allowed   bool
	Remaining int
	// RetryAfter is when the oldest counted request leaves the window.
	RetryAfter time.Duration
}

// Limiter decides requests against a bucket.
type Limiter struct {
	kv  jetstream.KeyValue
	now func() time.Time
}

// New limits through kv (the ratelimit bucket).
func New(kv jetstream.KeyValue) *Limiter { return &Limiter{kv: kv, now: time.Now} }

// maxAttempts bounds compare-and-set retries under contention.
const maxAttempts = 100

// Allow counts one request of key under rule if the window has room.
func (l *Limiter) Allow(ctx context.Context, rule Rule, key ...string) (Decision, error) {
	k := Key(rule.Name, key...)
	for attempt := 0; attempt < maxAttempts; attempt++ {
		now := l.now()
		entry, err := l.kv.Get(ctx, k)
		var log []int64
		var rev uint64
		switch {
		case errors.Is(err, jetstream.ErrKeyNotFound):
		case err != nil:
			return Decision{}, fmt.Errorf("read rate-limit window: %w", err)
		default:
			rev = entry.Revision()
			if json.Unmarshal(entry.Value(), &log) != nil {
				log = nil
			}
		}
		cut := now.Add(-rule.Window).UnixMilli()
		kept := log[:0]
		for _, t := range log {
			if t > cut {
				kept = append(kept, t)
			}
		}
		if len(kept) >= rule.Limit {
			wait := time.Duration(kept[0]-cut) * time.Millisecond
			return Decision{Allowed: false, RetryAfter: max(wait, time.Second)}, nil
		}
		kept = append(kept, now.UnixMilli())
		val, _ := json.Marshal(kept)
		if rev == 0 {
			_, err = l.kv.Create(ctx, k, val)
		} else {
			_, err = l.kv.Update(ctx, k, val, rev)
		}
		if err == nil {
			return Decision{Allowed: true, Remaining: rule.Limit - len(kept)}, nil
		}
		if !conflict(err) {
			return Decision{}, fmt.Errorf("write rate-limit window: %w", err)
		}
		// Another request changed the window first: read it again.
	}
	return Decision{}, errors.New("rate-limit window too contended")
}

func conflict(err error) bool {
	var apiErr *jetstream.APIError
	if errors.Is(err, jetstream.ErrKeyExists) {
		return true
	}
	if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence {
		return true
	}
	return strings.Contains(err.Error(), "wrong last sequence")
}

// Key builds a bucket key from a rule name and parts (client IP, slug...),
// replacing what key syntax does not allow.
func Key(rule string, parts ...string) string {
	var b strings.Builder
	b.WriteString(rule)
	for _, p := range parts {
		b.WriteByte('.')
		if p == "" {
			b.WriteByte('_')
		}
		for _, r := range p {
			if r < 128 && (r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				b.WriteRune(r)
			} else {
				b.WriteByte('_')
			}
		}
	}
	return b.String()
}

// Middleware limits the route by the keys keyOf returns. Over the limit:
// 429 rate_limited with Retry-After. A limiter that cannot decide (bucket
// unavailable) refuses with 503: the limits guard sign-in, and failing open
// would let a brute force through while NATS is degraded.
func Middleware(l *Limiter, rule Rule, keyOf func(c *fiber.Ctx) []string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		d, err := l.Allow(c.UserContext(), rule, keyOf(c)...)
		if err != nil {
			e := apierr.Wrap(apierr.CodeUnavailable, err, "rate limiting is unavailable; try again shortly")
			e.RetryAfter = 1
			return e
		}
		c.Set("X-RateLimit-Limit", fmt.Sprint(rule.Limit))
		if !d.Allowed {
			e := apierr.New(apierr.CodeRateLimited, "too many requests: at most %d per %s", rule.Limit, rule.Window)
			e.RetryAfter = int(math.Ceil(d.RetryAfter.Seconds()))
			c.Set("X-RateLimit-Remaining", "0")
			return e
		}
		c.Set("X-RateLimit-Remaining", fmt.Sprint(d.Remaining))
		return c.Next()
	}
}
