package bus_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/contract"
	"github.com/gnome-platform/gnome/libs/telemetry"
	"github.com/gnome-platform/gnome/libs/testenv"
)

var quiet = telemetry.NewLogger(io.Discard, "ERROR", "text")

// connect opens a connection to env's NATS, closed at cleanup.
func connect(t *testing.T, env *testenv.Env, name string) *nats.Conn {
	t.Helper()
	nc, err := bus.Connect(env.NATSURL, name, quiet)
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// serve registers an instance of service on its own connection, stopped at cleanup.
func serve(t *testing.T, env *testenv.Env, o bus.ServerOptions) (*bus.Server, *nats.Conn) {
	t.Helper()
	nc := connect(t, env, "server-"+o.Name)
	if o.Log == nil {
		o.Log = quiet
	}
	if o.Version == "" {
		o.Version = "0.0.1"
	}
	srv, err := bus.NewServer(nc, o)
	if err != nil {
		t.Fatalf("NewServer: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Stop(ctx)
	})
	return srv, nc
}

func handle(t *testing.T, srv *bus.Server, endpoint string, h bus.RawHandler) {
	t.Helper()
	if err := srv.Handle(endpoint, h); err != nil {
		t.Fatalf("Handle(%s): %v", endpoint, err)
	}
}

func timeout(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls cond every 10 ms for up to 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type sumReq struct {
	A, B int
}
type sumResp struct {
	Sum int `json:"sum"`
}

func TestSubject(t *testing.T) {
	if got := bus.Subject("auth", "verify"); got != "gnome.auth.verify" {
		t.Errorf("Subject = %q", got)
	}
}

func TestJSONCallRoundTrip(t *testing.T) {
	env := testenv.Start(t)
	srv, _ := serve(t, env, bus.ServerOptions{Name: "calc", Version: "1.0.0", InstanceID: "i1"})
	handle(t, srv, "sum", bus.JSON(func(_ context.Context, r sumReq) (sumResp, error) {
		return sumResp{Sum: r.A + r.B}, nil
	}))
	nc := connect(t, env, "client")
	got, err := bus.Call[sumResp](timeout(t, 5*time.Second), nc, bus.Subject("calc", "sum"), sumReq{A: 2, B: 40})
	if err != nil {
		t.Fatalf("Call: %v", err)
	}
	if got.Sum != 42 {
		t.Errorf("sum = %d, want 42", got.Sum)
	}
	// An empty body decodes as the zero request.
	raw, err := bus.CallRaw(timeout(t, 5*time.Second), nc, bus.Subject("calc", "sum"), nil)
	if err != nil || string(raw) != `{"sum":0}` {
		t.Errorf("empty request: %s, %v", raw, err)
	}
	// A call without a deadline gets the default one and still works.
	if got, err := bus.Call[sumResp](context.Background(), nc, bus.Subject("calc", "sum"), sumReq{A: 1, B: 1}); err != nil || got.Sum != 2 {
		t.Errorf("call without deadline: %+v, %v", got, err)
	}
}

func TestErrorRepliesRoundTrip(t *testing.T) {
	env := testenv.Start(t)
	srv, _ := serve(t, env, bus.ServerOptions{Name: "errs"})
	nc := connect(t, env, "client")
	for _, tc := range []struct {
		name      string
		err       func() error
		wantCode  apierr.Code
		wantMsg   string
		wantField string
	}{
		{"catalogue error with field", func() error {
			return apierr.New(apierr.CodeConflict, "slug %q is taken", "demo").OnField("/slug")
		}, apierr.CodeConflict, `slug "demo" is taken`, "/slug"},
		{"wrapped catalogue error", func() error {
			return fmt.Errorf("load user: %w", apierr.New(apierr.CodeForbidden, "not yours"))
		}, apierr.CodeForbidden, "not yours", ""},
		{"cause stays on the server", func() error {
			return apierr.Wrap(apierr.CodeUnavailable, errors.New("dial 10.1.1.1: refused"), "database down")
		}, apierr.CodeUnavailable, "database down", ""},
		{"plain error is internal and reveals nothing", func() error {
			return errors.New("password=hunter2 rejected")
		}, apierr.CodeInternal, "internal error", ""},
		{"panic is internal", func() error { panic("boom") }, apierr.CodeInternal, "internal error", ""},
		{"empty message still answers", func() error {
			return &apierr.Error{Code: apierr.CodeNotFound}
		}, apierr.CodeNotFound, apierr.CodeNotFound.Description(), ""},
		{"empty error is internal", func() error { return &apierr.Error{} }, apierr.CodeInternal, apierr.CodeInternal.Description(), ""},
		{"unknown code is bad_gateway", func() error {
			return &apierr.Error{Code: "teapot", Message: "short and stout"}
		}, apierr.CodeBadGateway, "short and stout", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			endpoint := strings.NewReplacer(" ", "_").Replace(tc.name)
			handle(t, srv, endpoint, bus.JSON(func(context.Context, struct{}) (struct{}, error) {
				return struct{}{}, tc.err()
			}))
			_, err := bus.Call[struct{}](timeout(t, 3*time.Second), nc, bus.Subject("errs", endpoint), struct{}{})
			var ae *apierr.Error
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v (%T), want an *apierr.Error", err, err)
			}
			if ae.Code != tc.wantCode || ae.Message != tc.wantMsg || ae.Field != tc.wantField {
				t.Errorf("got %s %q field %q, want %s %q field %q", ae.Code, ae.Message, ae.Field, tc.wantCode, tc.wantMsg, tc.wantField)
			}
			if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), "10.1.1.1") {
				t.Errorf("the caller sees the server's cause: %v", err)
			}
		})
	}
}

func TestUndecodableRequestIsInvalidJSON(t *testing.T) {
	env := testenv.Start(t)
	srv, _ := serve(t, env, bus.ServerOptions{Name: "calc"})
	called := false
	handle(t, srv, "sum", bus.JSON(func(_ context.Context, r sumReq) (sumResp, error) {
		called = true
		return sumResp{}, nil
	}))
	nc := connect(t, env, "client")
	_, err := bus.CallRaw(timeout(t, 5*time.Second), nc, bus.Subject("calc", "sum"), []byte(`{"A":`))
	if ae := apierr.From(err); ae.Code != apierr.CodeInvalidJson {
		t.Errorf("err = %v, want invalid_json", err)
	}
	if called {
		t.Error("the handler ran on an undecodable request")
	}
}

func TestUnreadableReplyIsBadGateway(t *testing.T) {
	env := testenv.Start(t)
	srv, _ := serve(t, env, bus.ServerOptions{Name: "odd"})
	handle(t, srv, "reply", func(context.Context, []byte) ([]byte, error) { return []byte("not json"), nil })
	nc := connect(t, env, "client")
	_, err := bus.Call[sumResp](timeout(t, 5*time.Second), nc, bus.Subject("odd", "reply"), struct{}{})
	if ae := apierr.From(err); ae.Code != apierr.CodeBadGateway {
		t.Errorf("err = %v, want bad_gateway", err)
	}
}

func TestNoRespondersIsUnavailable(t *testing.T) {
	env := testenv.Start(t)
	nc := connect(t, env, "client")
	_, err := bus.Call[struct{}](timeout(t, 5*time.Second), nc, bus.Subject("nobody", "home"), struct{}{})
	var ae *apierr.Error
	if !errors.As(err, &ae) || ae.Code != apierr.CodeUnavailable {
		t.Fatalf("err = %v, want unavailable", err)
	}
	if !errors.Is(err, bus.ErrNoResponders) {
		t.Errorf("err = %v does not wrap ErrNoResponders", err)
	}
	if !errors.Is(err, contract.ErrUnanswered) {
		t.Errorf("err = %v does not say the request got no answer", err)
	}
	if !strings.Contains(ae.Message, "gnome.nobody.home") {
		t.Errorf("message %q does not name the subject", ae.Message)
	}
}

func TestSlowReplyIsUnavailable(t *testing.T) {
	env := testenv.Start(t)
	srv, _ := serve(t, env, bus.ServerOptions{Name: "slow"})
	release := make(chan struct{})
	defer close(release)
	handle(t, srv, "wait", func(context.Context, []byte) ([]byte, error) {
		<-release
		return []byte("{}"), nil
	})
	nc := connect(t, env, "client")
	_, err := bus.Call[struct{}](timeout(t, 200*time.Millisecond), nc, bus.Subject("slow", "wait"), struct{}{})
	if ae := apierr.From(err); ae.Code != apierr.CodeUnavailable || ae.RetryAfter <= 0 {
		t.Errorf("err = %v (retry after %d s), want unavailable with a Retry-After", err, ae.RetryAfter)
	}
	// A caller may ask again only when no answer came: a reply not in time
	// is none, while an outage the service itself answered is an answer.
	if !errors.Is(err, contract.ErrUnanswered) {
		t.Errorf("err = %v does not say the request got no answer", err)
	}
	handle(t, srv, "down", func(context.Context, []byte) ([]byte, error) {
		return nil, apierr.New(apierr.CodeUnavailable, "the store is down")
	})
	_, err = bus.Call[struct{}](timeout(t, 5*time.Second), nc, bus.Subject("slow", "down"), struct{}{})
	if apierr.From(err).Code != apierr.CodeUnavailable || errors.Is(err, contract.ErrUnanswered) {
		t.Errorf("err = %v, want the service's unavailable, which is an answer", err)
	}
}

func TestHandlersRunConcurrently(t *testing.T) {
	env := testenv.Start(t)
	srv, _ := serve(t, env, bus.ServerOptions{Name: "par"})
	// Each handler waits until both are inside: with serial handling the
	// first would never see the second and both calls would time out.
	var entered atomic.Int32
	both := make(chan struct{})
	handle(t, srv, "meet", func(context.Context, []byte) ([]byte, error) {
		if entered.Add(1) == 2 {
			close(both)
		}
		select {
		case <-both:
			return []byte(`"met"`), nil
		case <-time.After(5 * time.Second):
			return nil, apierr.New(apierr.CodeTimeout, "the other request never arrived")
		}
	})
	nc := connect(t, env, "client")
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			got, err := bus.Call[string](timeout(t, 10*time.Second), nc, bus.Subject("par", "meet"), nil)
			if err == nil && got != "met" {
				err = fmt.Errorf("reply %q", got)
			}
			errs <- err
		}()
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Errorf("call: %v", err)
		}
	}
}

func TestConcurrencyIsBounded(t *testing.T) {
	env := testenv.Start(t)
	srv, _ := serve(t, env, bus.ServerOptions{Name: "one", Concurrency: 1})
	var running, peak atomic.Int32
	release := make(chan struct{})
	handle(t, srv, "work", func(context.Context, []byte) ([]byte, error) {
		n := running.Add(1)
		defer running.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		<-release
		return []byte("{}"), nil
	})
	nc := connect(t, env, "client")
	errs := make(chan error, 3)
	for range 3 {
		go func() {
			_, err := bus.Call[struct{}](timeout(t, 10*time.Second), nc, bus.Subject("one", "work"), nil)
			errs <- err
		}()
	}
	eventually(t, "the first handler to start", func() bool { return running.Load() == 1 })
	time.Sleep(200 * time.Millisecond) // give a wrongly admitted second handler time to show
	if p := peak.Load(); p != 1 {
		t.Errorf("%d handlers ran at once with Concurrency 1", p)
	}
	close(release)
	for range 3 {
		if err := <-errs; err != nil {
			t.Errorf("call: %v", err)
		}
	}
	if p := peak.Load(); p != 1 {
		t.Errorf("%d handlers ran at once with Concurrency 1", p)
	}
}

func TestQueueGroupSharesRequestsAndDiscoverFindsBoth(t *testing.T) {
	env := testenv.Start(t)
	var mu sync.Mutex
	served := map[string]int{}
	var servers []*bus.Server
	for _, inst := range []string{"inst-a", "inst-b"} {
		srv, _ := serve(t, env, bus.ServerOptions{Name: "shared", Version: "2.0.0", InstanceID: inst})
		handle(t, srv, "who", func(context.Context, []byte) ([]byte, error) {
			mu.Lock()
			served[inst]++
			mu.Unlock()
			return []byte(`"` + inst + `"`), nil
		})
		servers = append(servers, srv)
	}
	nc := connect(t, env, "client")
	const n = 60
	for range n {
		if _, err := bus.Call[string](timeout(t, 5*time.Second), nc, bus.Subject("shared", "who"), nil); err != nil {
			t.Fatalf("call: %v", err)
		}
	}
	mu.Lock()
	if served["inst-a"]+served["inst-b"] != n {
		t.Errorf("served %v, want %d requests in all, each once", served, n)
	}
	if served["inst-a"] == 0 || served["inst-b"] == 0 {
		t.Errorf("one instance took every request: %v", served)
	}
	mu.Unlock()

	found, err := bus.Discover(timeout(t, 5*time.Second), nc, 300*time.Millisecond, 3*time.Second)
	if err != nil {
		t.Fatalf("Discover: %v", err)
	}
	list := found["shared"]
	if len(list) != 2 {
		t.Fatalf("Discover found %+v, want two instances of shared", found)
	}
	ids := map[string]string{servers[0].ID(): "inst-a", servers[1].ID(): "inst-b"}
	for i, in := range list {
		if ids[in.ID] != in.Instance || in.Service != "shared" || in.Version != "2.0.0" || in.StartedAt == "" {
			t.Errorf("instance %+v does not match the servers %v", in, ids)
		}
		if i > 0 && list[i-1].ID > in.ID {
			t.Errorf("instances not sorted by ID: %+v", list)
		}
	}
}

func TestStopLeavesTheGroupAndWaitsForInFlightHandlers(t *testing.T) {
	env := testenv.Start(t)
	srv, _ := serve(t, env, bus.ServerOptions{Name: "leaving", InstanceID: "x"})
	started := make(chan struct{})
	release := make(chan struct{})
	var finished atomic.Bool
	handle(t, srv, "work", func(_ context.Context, data []byte) ([]byte, error) {
		if string(data) == `"slow"` {
			close(started)
			<-release
			finished.Store(true)
		}
		return []byte(`"done"`), nil
	})
	nc := connect(t, env, "client")
	reply := make(chan error, 1)
	go func() {
		_, err := bus.Call[string](timeout(t, 10*time.Second), nc, bus.Subject("leaving", "work"), "slow")
		reply <- err
	}()
	<-started

	stopped := make(chan error, 1)
	go func() { stopped <- srv.Stop(timeout(t, 10*time.Second)) }()

	// While the handler still runs, the instance is already out of the group.
	eventually(t, "no responders after Stop", func() bool {
		_, err := bus.Call[string](timeout(t, time.Second), nc, bus.Subject("leaving", "work"), "fast")
		return errors.Is(err, bus.ErrNoResponders)
	})
	found, _ := bus.Discover(timeout(t, 5*time.Second), nc, 200*time.Millisecond, time.Second)
	if len(found["leaving"]) != 0 {
		t.Errorf("a stopping instance still answers discovery: %+v", found["leaving"])
	}
	select {
	case err := <-stopped:
		t.Fatalf("Stop returned (%v) while a handler was running", err)
	default:
	}

	close(release)
	if err := <-stopped; err != nil {
		t.Errorf("Stop: %v", err)
	}
	if !finished.Load() {
		t.Error("Stop returned before the in-flight handler finished")
	}
	if err := <-reply; err != nil {
		t.Errorf("the in-flight request was not answered: %v", err)
	}
}

func TestStopGivesUpAtItsDeadline(t *testing.T) {
	env := testenv.Start(t)
	srv, _ := serve(t, env, bus.ServerOptions{Name: "stuck"})
	started := make(chan struct{})
	release := make(chan struct{})
	defer close(release)
	handle(t, srv, "work", func(context.Context, []byte) ([]byte, error) {
		close(started)
		<-release
		return nil, nil
	})
	nc := connect(t, env, "client")
	go func() { _, _ = bus.CallRaw(timeout(t, 10*time.Second), nc, bus.Subject("stuck", "work"), nil) }()
	<-started
	err := srv.Stop(timeout(t, 100*time.Millisecond))
	if err == nil || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Stop = %v, want a deadline error while a handler is stuck", err)
	}
}

// A request already delivered to an instance when it stops is either served
// before Stop returns or refused as unavailable; it never runs after Stop.
func TestRequestQueuedDuringStopIsServedOrRefused(t *testing.T) {
	env := testenv.Start(t)
	srv, srvConn := serve(t, env, bus.ServerOptions{Name: "busy", Concurrency: 1})
	startedA := make(chan struct{})
	releaseA := make(chan struct{})
	var bDone atomic.Bool
	handle(t, srv, "work", func(_ context.Context, data []byte) ([]byte, error) {
		switch string(data) {
		case "A":
			close(startedA)
			<-releaseA
		case "B":
			bDone.Store(true)
		}
		return []byte(`"ok"`), nil
	})
	nc := connect(t, env, "client")
	go func() { _, _ = bus.CallRaw(timeout(t, 10*time.Second), nc, bus.Subject("busy", "work"), []byte("A")) }()
	<-startedA

	// B reaches the instance while A holds its only slot.
	inbox := nats.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		t.Fatal(err)
	}
	before := srvConn.Stats().InMsgs
	if err := nc.PublishRequest(bus.Subject("busy", "work"), inbox, []byte("B")); err != nil {
		t.Fatal(err)
	}
	eventually(t, "B to reach the server's connection", func() bool { return srvConn.Stats().InMsgs > before })
	time.Sleep(50 * time.Millisecond)

	stopped := make(chan struct{})
	var bDoneAtStop bool
	go func() {
		_ = srv.Stop(timeout(t, 10*time.Second))
		bDoneAtStop = bDone.Load()
		close(stopped)
	}()
	eventually(t, "the instance to leave the group", func() bool {
		_, err := bus.CallRaw(timeout(t, 200*time.Millisecond), nc, bus.Subject("busy", "work"), []byte("probe"))
		return errors.Is(err, bus.ErrNoResponders)
	})
	close(releaseA)
	select {
	case <-stopped:
	case <-time.After(10 * time.Second):
		t.Fatal("Stop did not return")
	}

	msg, err := sub.NextMsg(5 * time.Second)
	if err != nil {
		t.Fatalf("B got no reply: %v", err)
	}
	if code := msg.Header.Get(bus.HeaderErrorCode); code != "" {
		if code != string(apierr.CodeUnavailable) {
			t.Errorf("B refused with %s, want unavailable", code)
		}
		if bDone.Load() {
			t.Error("B was refused and still ran")
		}
		return
	}
	if !bDoneAtStop {
		t.Error("B was served after Stop returned")
	}
}

func TestTraceContextAndRequestIDTravel(t *testing.T) {
	exp := tracetest.NewInMemoryExporter()
	tel, err := telemetry.New(context.Background(), telemetry.Options{Service: "bus-test", LogWriter: io.Discard, SpanExporter: exp})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tel.Shutdown(context.Background()) })

	env := testenv.Start(t)
	srv, _ := serve(t, env, bus.ServerOptions{Name: "traced"})
	type seen struct {
		sc  trace.SpanContext
		rid string
	}
	got := make(chan seen, 1)
	handle(t, srv, "echo", func(ctx context.Context, _ []byte) ([]byte, error) {
		got <- seen{trace.SpanContextFromContext(ctx), telemetry.RequestID(ctx)}
		return []byte("{}"), nil
	})
	nc := connect(t, env, "client")

	ctx, parent := tel.Tracer("libs/bus_test").Start(context.Background(), "parent")
	ctx = telemetry.WithRequestID(ctx, "req-abcdef12")
	if _, err := bus.CallRaw(timeout(t, 5*time.Second), nc, bus.Subject("traced", "echo"), nil); err != nil {
		t.Fatal(err)
	}
	<-got // a call without trace or request ID
	if _, err := bus.CallRaw(ctx, nc, bus.Subject("traced", "echo"), nil); err != nil {
		t.Fatal(err)
	}
	parent.End()
	s := <-got
	traceID := parent.SpanContext().TraceID()
	if s.sc.TraceID() != traceID {
		t.Errorf("handler trace %s, want the caller's %s", s.sc.TraceID(), traceID)
	}
	if s.rid != "req-abcdef12" {
		t.Errorf("handler request ID %q, want req-abcdef12", s.rid)
	}

	var client, server tracetest.SpanStub
	eventually(t, "client and server spans", func() bool {
		for _, sp := range exp.GetSpans() {
			if sp.SpanContext.TraceID() != traceID {
				continue
			}
			switch sp.SpanKind {
			case trace.SpanKindClient:
				client = sp
			case trace.SpanKindServer:
				server = sp
			}
		}
		return client.Name != "" && server.Name != ""
	})
	if client.Parent.SpanID() != parent.SpanContext().SpanID() {
		t.Errorf("client span's parent %s, want the caller's span %s", client.Parent.SpanID(), parent.SpanContext().SpanID())
	}
	if server.Parent.SpanID() != client.SpanContext.SpanID() {
		t.Errorf("server span's parent %s, want the client span %s", server.Parent.SpanID(), client.SpanContext.SpanID())
	}
	if !server.Parent.IsRemote() {
		t.Error("the server span's parent is not remote")
	}
	if server.SpanContext.SpanID() != s.sc.SpanID() {
		t.Error("the handler's context is not the server span")
	}
	if server.Name != "gnome.traced.echo" {
		t.Errorf("server span name %q", server.Name)
	}
}

func TestInjectExtract(t *testing.T) {
	ctx, _ := bus.Extract(context.Background(), nil)
	if ctx == nil {
		t.Fatal("Extract of nil headers lost the context")
	}
	h := nats.Header{}
	bus.Inject(context.Background(), h, "")
	if len(h) != 0 {
		t.Errorf("Inject of nothing wrote %v", h)
	}
	bus.Inject(context.Background(), h, "rid-12345")
	_, rid := bus.Extract(context.Background(), h)
	if rid != "rid-12345" {
		t.Errorf("request ID %q after a round trip", rid)
	}
	if got := http.Header(h).Get(bus.HeaderRequestID); got != "rid-12345" {
		t.Errorf("header %s = %q", bus.HeaderRequestID, got)
	}
}

func TestDiscoverStopsWithItsContext(t *testing.T) {
	env := testenv.Start(t)
	nc := connect(t, env, "client")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := bus.Discover(ctx, nc, time.Second, 5*time.Second); !errors.Is(err, context.Canceled) {
		t.Errorf("Discover with a cancelled context: %v", err)
	}
}
