package ratelimit_test

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/ratelimit"
	"github.com/gnome-platform/gnome/libs/testenv"
)

func bucket(t *testing.T, env *testenv.Env) jetstream.KeyValue {
	t.Helper()
	nc, err := nats.Connect(env.NATSURL)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if err := (bus.Topology{JS: js}).EnsureBuckets(ctx, bus.BucketRateLimit); err != nil {
		t.Fatal(err)
	}
	kv, err := js.KeyValue(ctx, bus.BucketRateLimit)
	if err != nil {
		t.Fatal(err)
	}
	return kv
}

// Many limiters (as many edge instances, each on its own connection)
// hammering one key concurrently admit exactly the limit.
func TestExactAcrossInstances(t *testing.T) {
	env := testenv.Start(t)
	var limiters []*ratelimit.Limiter
	for i := 0; i < 4; i++ {
		limiters = append(limiters, ratelimit.New(bucket(t, env)))
	}
	rule := ratelimit.Rule{Name: "test", Limit: 7, Window: time.Minute}
	var allowed, denied atomic.Int32
	var wg sync.WaitGroup
	for i := 0; i < 40; i++ {
		wg.Add(1)
		go func(l *ratelimit.Limiter) {
			defer wg.Done()
			d, err := l.Allow(context.Background(), rule, "198.51.100.7")
			if err != nil {
				t.Error(err)
				return
			}
			if d.Allowed {
				allowed.Add(1)
			} else {
				denied.Add(1)
				if d.RetryAfter < time.Second || d.RetryAfter > time.Minute {
					t.Errorf("retry after %v, want within the window", d.RetryAfter)
				}
			}
		}(limiters[i%len(limiters)])
	}
	wg.Wait()
	if allowed.Load() != 7 || denied.Load() != 33 {
		t.Fatalf("allowed %d, denied %d; want 7 and 33", allowed.Load(), denied.Load())
	}
	// Another client is counted apart.
	d, err := limiters[0].Allow(context.Background(), rule, "198.51.100.8")
	if err != nil || !d.Allowed || d.Remaining != 6 {
		t.Fatalf("other client: %+v %v", d, err)
	}
}

func TestWindowSlides(t *testing.T) {
	env := testenv.Start(t)
	l := ratelimit.New(bucket(t, env))
	rule := ratelimit.Rule{Name: "slide", Limit: 2, Window: 1500 * time.Millisecond}
	ctx := context.Background()
	for i := 0; i < 2; i++ {
		if d, _ := l.Allow(ctx, rule, "a"); !d.Allowed {
			t.Fatalf("request %d refused", i)
		}
	}
	if d, _ := l.Allow(ctx, rule, "a"); d.Allowed {
		t.Fatal("third request within the window allowed")
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		d, err := l.Allow(ctx, rule, "a")
		if err != nil {
			t.Fatal(err)
		}
		if d.Allowed {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the window never slid")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Counts survive a new limiter (an edge restart): they live in the bucket.
func TestCountsSurviveRestart(t *testing.T) {
	env := testenv.Start(t)
	rule := ratelimit.Rule{Name: "restart", Limit: 3, Window: time.Minute}
	ctx := context.Background()
	first := ratelimit.New(bucket(t, env))
	for i := 0; i < 3; i++ {
		if d, _ := first.Allow(ctx, rule, "c"); !d.Allowed {
			t.Fatal("refused under the limit")
		}
	}
	second := ratelimit.New(bucket(t, env))
	if d, _ := second.Allow(ctx, rule, "c"); d.Allowed {
		t.Fatal("a new limiter forgot the counts")
	}
}

func TestKey(t *testing.T) {
	cases := []struct {
		rule  string
		parts []string
		want  string
	}{
		{"login_post", []string{"127.0.0.1"}, "login_post.127_0_0_1"},
		{"login_post", []string{"2001:db8::1"}, "login_post.2001_db8__1"},
		{"export", []string{"10.0.0.1", "my-exp"}, "export.10_0_0_1.my-exp"},
		{"login_post", []string{""}, "login_post._"},
		{"login_post", []string{"a.b*c>"}, "login_post.a_b_c_"},
		{"login_post", []string{"ünï"}, "login_post._n_"},
		{"export", []string{"198.51.100.7", "sub.slug"}, "export.198_51_100_7.sub_slug"},
	}
	for _, c := range cases {
		if got := ratelimit.Key(c.rule, c.parts...); got != c.want {
			t.Errorf("Key(%q, %q) = %q, want %q", c.rule, c.parts, got, c.want)
		}
	}
}
