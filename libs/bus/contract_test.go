package bus_test

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/contract"
	"github.com/gnome-platform/gnome/libs/telemetry"
	"github.com/gnome-platform/gnome/libs/testenv"
)

type addReq struct {
	A int `json:"a"`
	B int `json:"b"`
}

type addRep struct {
	Sum    int    `json:"sum"`
	Caller string `json:"caller"`
}

// The contract as a client package would state it.
var addEndpoint = contract.Endpoint[addReq, addRep]{Service: "adder", Name: "math.add"}

func TestContractEndpointRoundTrip(t *testing.T) {
	env := testenv.Start(t)
	srv, _ := serve(t, env, bus.ServerOptions{Name: "adder"})
	err := srv.Register(bus.Endpoint(addEndpoint, func(ctx context.Context, r addReq) (addRep, error) {
		return addRep{Sum: r.A + r.B, Caller: telemetry.RequestID(ctx)}, nil
	}))
	if err != nil {
		t.Fatalf("Register: %v", err)
	}
	nc := connect(t, env, "client")
	ctx := telemetry.WithRequestID(timeout(t, 5*time.Second), "req-contract-1")
	got, err := addEndpoint.Call(ctx, bus.Client{NC: nc}, addReq{A: 40, B: 2})
	if err != nil {
		t.Fatalf("Call: %v", err)
	}
	if got != (addRep{Sum: 42, Caller: "req-contract-1"}) {
		t.Errorf("reply %+v, want sum 42 from the handler that saw the request ID", got)
	}
	// The contract's subject is where the server listens: a plain call on
	// it reaches the same handler.
	if addEndpoint.Subject() != "gnome.adder.math.add" {
		t.Errorf("subject %q", addEndpoint.Subject())
	}
	if raw, err := bus.CallRaw(timeout(t, 5*time.Second), nc, addEndpoint.Subject(), []byte(`{"a":1,"b":2}`)); err != nil || !strings.Contains(string(raw), `"sum":3`) {
		t.Errorf("raw call on the contract's subject: %s, %v", raw, err)
	}
}

func TestRegisterRefusesAnotherServicesEndpoint(t *testing.T) {
	env := testenv.Start(t)
	srv, _ := serve(t, env, bus.ServerOptions{Name: "subtractor"})
	var called atomic.Bool
	other := bus.Endpoint(addEndpoint, func(context.Context, addReq) (addRep, error) {
		called.Store(true)
		return addRep{}, nil
	})
	err := srv.Register(other)
	if err == nil {
		t.Fatal("Register accepted an endpoint of the adder service on the subtractor server")
	}
	if !strings.Contains(err.Error(), "adder") || !strings.Contains(err.Error(), "subtractor") {
		t.Errorf("err %q does not name both services", err)
	}
	nc := connect(t, env, "client")
	// Neither the contract's subject nor the same endpoint name under this
	// server's service is served.
	for _, subject := range []string{addEndpoint.Subject(), bus.Subject("subtractor", addEndpoint.Name)} {
		_, err := bus.CallRaw(timeout(t, 5*time.Second), nc, subject, []byte(`{}`))
		if !errors.Is(err, bus.ErrNoResponders) {
			t.Errorf("%s after the refused registration: %v, want no responders", subject, err)
		}
	}
	if called.Load() {
		t.Error("the refused handler ran")
	}
}

func TestUndecodableContractReplyIsBadGateway(t *testing.T) {
	env := testenv.Start(t)
	srv, _ := serve(t, env, bus.ServerOptions{Name: "adder"})
	// The server answers the same subject with another reply type, as a
	// server built from a different version of the contract would.
	newer := contract.Endpoint[addReq, []string]{Service: "adder", Name: "math.add"}
	if err := srv.Register(bus.Endpoint(newer, func(context.Context, addReq) ([]string, error) {
		return []string{"not", "a", "sum"}, nil
	})); err != nil {
		t.Fatal(err)
	}
	nc := connect(t, env, "client")
	_, err := addEndpoint.Call(timeout(t, 5*time.Second), bus.Client{NC: nc}, addReq{A: 1, B: 1})
	var ae *apierr.Error
	if !errors.As(err, &ae) || ae.Code != apierr.CodeBadGateway {
		t.Errorf("err = %v, want an apierr bad_gateway", err)
	}
}

func TestContractServiceErrorKeepsItsCode(t *testing.T) {
	env := testenv.Start(t)
	srv, _ := serve(t, env, bus.ServerOptions{Name: "adder"})
	if err := srv.Register(bus.Endpoint(addEndpoint, func(_ context.Context, r addReq) (addRep, error) {
		if r.A < 0 {
			return addRep{}, apierr.New(apierr.CodeValidationFailed, "a must not be negative").OnField("/a")
		}
		return addRep{}, apierr.New(apierr.CodeNotFound, "no sum for %d", r.A)
	})); err != nil {
		t.Fatal(err)
	}
	nc := connect(t, env, "client")
	for _, tc := range []struct {
		req   addReq
		code  apierr.Code
		msg   string
		field string
	}{
		{addReq{A: 3}, apierr.CodeNotFound, "no sum for 3", ""},
		{addReq{A: -1}, apierr.CodeValidationFailed, "a must not be negative", "/a"},
	} {
		_, err := addEndpoint.Call(timeout(t, 5*time.Second), bus.Client{NC: nc}, tc.req)
		var ae *apierr.Error
		if !errors.As(err, &ae) {
			t.Fatalf("err = %v (%T), want an *apierr.Error", err, err)
		}
		if ae.Code != tc.code || ae.Message != tc.msg || ae.Field != tc.field {
			t.Errorf("got %s %q field %q, want %s %q field %q", ae.Code, ae.Message, ae.Field, tc.code, tc.msg, tc.field)
		}
	}
}

func TestClientRefusesAnUnencodableRequest(t *testing.T) {
	env := testenv.Start(t)
	nc := connect(t, env, "client")
	var rep addRep
	err := bus.Client{NC: nc}.Request(timeout(t, 5*time.Second), addEndpoint.Subject(), func() {}, &rep)
	if err == nil || !strings.Contains(err.Error(), addEndpoint.Subject()) {
		t.Errorf("err = %v, want an encoding error naming the subject", err)
	}
}
