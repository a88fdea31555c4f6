package edge_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/jobs"
	"github.com/gnome-platform/gnome/libs/testenv"
	"github.com/gnome-platform/gnome/services/edge"
)

func TestHealthAndDetailed(t *testing.T) {
	env := testenv.Start(t)
	e := startEdge(t, env)
	base := "http://" + e.Addr

	code, hdr, body := get(t, base+"/health")
	if code != 200 || strings.TrimSpace(string(body)) != `{"status":"ok"}` {
		t.Fatalf("/health = %d %s", code, body)
	}
	if hdr.Get("X-Request-ID") == "" {
		t.Error("no X-Request-ID on /health")
	}

	// Only the edge runs: the other services show down and the platform
	// degraded, while the infrastructure is fine (200).
	code, _, body = get(t, base+"/health/detailed")
	var det edge.Detailed
	if err := json.Unmarshal(body, &det); err != nil {
		t.Fatalf("detailed: %v: %s", err, body)
	}
	if code != 200 || det.Status != "degraded" {
		t.Fatalf("detailed = %d %q, want 200 degraded", code, det.Status)
	}
	if s := det.Services["edge"]; s.Status != "ok" || len(s.Instances) != 1 {
		t.Errorf("edge service = %+v, want one live instance", s)
	}
	for _, name := range []string{"auth", "upload", "export", "actorworker"} {
		if s := det.Services[name]; s.Status != "down" || len(s.Instances) != 0 {
			t.Errorf("%s = %+v, want down with no instances", name, s)
		}
	}
	for _, c := range []string{"database", "nats", "jetstream", "disk"} {
		if det.Components[c].Status != "ok" {
			t.Errorf("component %s = %+v", c, det.Components[c])
		}
	}
	// The edge ensures the object stores it reads bundles from.
	if det.Components["object_store"].Status != "ok" {
		t.Errorf("object_store = %+v", det.Components["object_store"])
	}
}

func TestHealthFailsWhenTheDatabaseStops(t *testing.T) {
	env := testenv.Start(t)
	e := startEdge(t, env)
	base := "http://" + e.Addr
	if code, _, _ := get(t, base+"/health"); code != 200 {
		t.Fatalf("/health = %d before the store stopped", code)
	}
	env.Store.Shutdown()
	eventually(t, 10*time.Second, "/health to answer 503", func() bool {
		code, _, _ := get(t, base+"/health")
		return code == http.StatusServiceUnavailable
	})
	code, _, body := get(t, base+"/health/detailed")
	var det edge.Detailed
	_ = json.Unmarshal(body, &det)
	// Anonymous callers learn that the database is down, not why: error
	// texts are for admins.
	if code != http.StatusServiceUnavailable || det.Components["database"].Status != "down" || det.Components["database"].Error != "" {
		t.Fatalf("detailed after store stop = %d %+v", code, det.Components["database"])
	}
}

func TestMetrics(t *testing.T) {
	env := testenv.Start(t)
	e := startEdge(t, env)
	base := "http://" + e.Addr

	// A job consumer, so the JetStream collector has something to report.
	cfg := env.Config(t, nil)
	d := env.Deps(t, cfg)
	ctx := context.Background()
	if err := d.Topology.EnsureStreams(ctx, bus.StreamExportJobs); err != nil {
		t.Fatal(err)
	}
	q := jobs.NewQueue(d.JS, bus.StreamExportJobs, "jobs.export")
	if _, err := q.NewWorker(ctx, jobs.WorkerOptions{Durable: "metrics-probe"}, func(context.Context, *jobs.Job) error { return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := q.Enqueue(ctx, "probe", "job-1", map[string]int{"n": 1}); err != nil {
		t.Fatal(err)
	}

	// Methods of different lengths on the same connection: a label that
	// aliased the request buffer would come out garbled ("DELET", "GETT")
	// and could even make /metrics fail on colliding label sets.
	for _, m := range []string{"PATCH", "DELETE", "POST", "GET", "PATCH", "GET"} {
		req, _ := http.NewRequest(m, base+"/no/such/route", nil)
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
		}
	}
	get(t, base+"/health")
	get(t, base+"/no/such/route")
	// The consumer's pending count is read from the server at scrape time;
	// wait until the server reports the enqueued job.
	pending := `gnome_jetstream_consumer_pending{consumer="metrics-probe",stream="JOBS_EXPORT"} 1`
	eventually(t, 5*time.Second, "the consumer's pending job in /metrics", func() bool {
		_, _, b := get(t, base+"/metrics")
		return strings.Contains(string(b), pending)
	})
	code, hdr, body := get(t, base+"/metrics")
	if code != 200 || !strings.HasPrefix(hdr.Get("Content-Type"), "text/plain") {
		t.Fatalf("/metrics = %d %s", code, hdr.Get("Content-Type"))
	}
	text := string(body)
	for _, bad := range []string{`method="DELET"`, `method="GETT"`, `method="PATCHE"`, `method="POSTE"`} {
		if strings.Contains(text, bad) {
			t.Errorf("/metrics has a garbled label %s", bad)
		}
	}
	for _, want := range []string{
		`gnome_http_requests_total{method="GET",route="/health",status="200"}`,
		`gnome_http_requests_total{method="GET",route="unmatched",status="404"}`,
		`gnome_http_request_duration_seconds_bucket{method="GET",route="/health"`,
		`gnome_db_pool_open`,
		`gnome_db_pool_checkout_seconds_count`,
		`gnome_jetstream_consumer_pending{consumer="metrics-probe",stream="JOBS_EXPORT"} 1`,
		`go_goroutines`,
		`gnome_http_requests_total{method="PATCH",route="unmatched",status="404"} 2`,
		`gnome_http_requests_total{method="DELETE",route="unmatched",status="404"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

// /metrics behind a reverse proxy on the same host: the proxy's loopback
// address no longer decides, the client it names does; a scraper with the
// token reads from anywhere.
func TestMetricsAccessBehindAProxy(t *testing.T) {
	const token = "scraper-token-0123456789abcdef"
	env := testenv.Start(t)
	for _, tc := range []struct {
		name    string
		vars    map[string]string
		headers map[string]string
		status  int
		code    string
	}{
		{"a local scraper", map[string]string{"TRUSTED_PROXIES": "127.0.0.1/32"}, nil, 200, ""},
		{"an outside client through the local proxy", map[string]string{"TRUSTED_PROXIES": "127.0.0.1/32"},
			map[string]string{"X-Forwarded-For": "198.51.100.7", "X-Forwarded-Proto": "https"}, 403, "forbidden"},
		{"a client that claims loopback, through the local proxy", map[string]string{"TRUSTED_PROXIES": "127.0.0.1/32"},
			map[string]string{"X-Forwarded-For": "127.0.0.1, 198.51.100.7"}, 403, "forbidden"},
		{"a proxy the platform was not told about", nil,
			map[string]string{"X-Forwarded-For": "198.51.100.7"}, 403, "forbidden"},
		{"a client in METRICS_ALLOWED_CIDRS through the proxy", map[string]string{"TRUSTED_PROXIES": "127.0.0.1/32", "METRICS_ALLOWED_CIDRS": "10.9.0.0/16"},
			map[string]string{"X-Forwarded-For": "10.9.1.2"}, 200, ""},
		{"a scraper with the token, from outside", map[string]string{"TRUSTED_PROXIES": "127.0.0.1/32", "METRICS_TOKEN": token},
			map[string]string{"X-Forwarded-For": "198.51.100.7", "Authorization": "Bearer " + token}, 200, ""},
		{"a wrong token", map[string]string{"TRUSTED_PROXIES": "127.0.0.1/32", "METRICS_TOKEN": token},
			map[string]string{"X-Forwarded-For": "198.51.100.7", "Authorization": "Bearer " + token[:len(token)-1] + "x"}, 401, "unauthenticated"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := env.Config(t, tc.vars)
			d := env.Deps(t, cfg)
			e := edge.New(d)
			testenv.Run(t, d, e)
			req, _ := http.NewRequest(http.MethodGet, "http://"+e.Addr+"/metrics", nil)
			for k, v := range tc.headers {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %.300s", resp.StatusCode, tc.status, body)
			}
			if resp.Header.Get("X-Content-Type-Options") != "nosniff" {
				t.Error("no nosniff on /metrics")
			}
			if tc.status == 200 {
				if !strings.Contains(string(body), "go_goroutines") {
					t.Errorf("no metrics in %.300s", body)
				}
				return
			}
			var eb struct {
				Error struct{ Code, Message string } `json:"error"`
			}
			if err := json.Unmarshal(body, &eb); err != nil || eb.Error.Code != tc.code || eb.Error.Message == "" {
				t.Errorf("body %s, want the error shape with %s", body, tc.code)
			}
			if strings.Contains(string(body), "go_goroutines") {
				t.Error("metrics leaked")
			}
		})
	}
}
