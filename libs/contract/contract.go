// Package contract is how services speak to each other on the bus, stated
// without the bus: an endpoint is a subject with the types of its request
// and its reply, and a call goes through a Transport.
//
// Each service's contract is a leaf package built on this one (authapi,
// uploadapi, exportapi, actorapi, events): its subjects, its message types
// and a typed client. The server registers its handlers from the same
// Endpoint values (libs/bus.Endpoint, Server.Register), so client and server cannot disagree
// on a subject or a type. Contract packages import no bus, store or
// telemetry code; `make check` enforces it (docs/architecture.md, "Layers").
package contract

import (
	"context"
	"errors"
	"time"
)

// Prefix starts every request/reply subject: gnome.<service>.<endpoint>.
const Prefix = "gnome."

// Subject is the request subject of a service's endpoint.
func Subject(service, endpoint string) string { return Prefix + service + "." + endpoint }

// Transport carries one request and decodes its reply. libs/bus implements
// it over NATS request/reply; errors are *apierr.Error where the service
// or the transport gave a code, and a request that got no answer wraps
// ErrUnanswered.
type Transport interface {
	Request(ctx context.Context, subject string, req, reply any) error
}

// ErrUnanswered is in the chain of a Transport's error when the request got
// no answer: no instance was listening, the connection was lost, or the
// answer did not come within the context's deadline (an instance or a bus
// node lost with the request). Whether a service handled it is unknown, so
// only a request that is idempotent may be sent again; an answer the
// service gave, even an error, is never one of these.
var ErrUnanswered = errors.New("the request got no answer")

// Endpoint is one request/reply endpoint of a service: requests of type
// Req are answered with a Rep.
type Endpoint[Req, Rep any] struct {
	Service string
	Name    string
}

// Subject is where the endpoint listens.
func (e Endpoint[Req, Rep]) Subject() string { return Subject(e.Service, e.Name) }

// Call sends req through t and returns the reply.
func (e Endpoint[Req, Rep]) Call(ctx context.Context, t Transport, req Req) (Rep, error) {
	var rep Rep
	err := t.Request(ctx, e.Subject(), req, &rep)
	return rep, err
}

// Caller is who asks; services decide what it may do. Token is the proof:
// the caller's token, which the serving service verifies (libs/svc
// Identity) and takes the email, roles and admin flag from, so that a
// message naming someone else changes nothing.
type Caller struct {
	Email     string   `json:"email"`
	Roles     []string `json:"roles"`
	IsAdmin   bool     `json:"is_admin"`
	RequestID string   `json:"request_id,omitempty"`
	Token     string   `json:"token,omitempty"`
	// Scoped is set by the serving side when Token stands for a personal
	// API token, whose Roles may be fewer than its user's; never read from
	// a message.
	Scoped bool `json:"-"`
}

// ManagesOwn reports whether the caller may act as the owner of the
// experiments it owns: managing needs the developer role, and a personal
// token made with fewer roles (["user"], say) gets no more than those,
// even for its user's own experiments. Sessions keep what their user holds.
func (c Caller) ManagesOwn() bool {
	if !c.Scoped {
		return true
	}
	for _, r := range c.Roles {
		if r == "developer" || r == "admin" {
			return true
		}
	}
	return false
}

// Empty is an empty request or reply.
type Empty struct{}

// Status is what a service instance reports about itself on its status
// endpoint.
type Status struct {
	Service   string    `json:"service"`
	Instance  string    `json:"instance"`
	ID        string    `json:"id"`
	Version   string    `json:"version"`
	StartedAt time.Time `json:"started_at"`
}

// StatusEndpoint is the endpoint every service answers on
// gnome.<service>.status.
func StatusEndpoint(service string) Endpoint[Empty, Status] {
	return Endpoint[Empty, Status]{Service: service, Name: "status"}
}

// AskAgain calls ask with a context bounded to attempt, and calls it again
// while an attempt got no answer (ErrUnanswered) and ctx allows, spaced by
// a short back-off: a lost instance or bus node then costs one attempt,
// not ctx's whole deadline. Only for requests that are safe to repeat:
// reads, and changes that the service recognises when asked twice (an
// export request joins the same requester's export). The last attempt's
// error is returned.
func AskAgain[Rep any](ctx context.Context, attempt time.Duration, ask func(ctx context.Context) (Rep, error)) (Rep, error) {
	backoff := 50 * time.Millisecond
	for {
		actx, cancel := context.WithTimeout(ctx, attempt)
		rep, err := ask(actx)
		cancel()
		if err == nil || !errors.Is(err, ErrUnanswered) || ctx.Err() != nil {
			return rep, err
		}
		if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < backoff {
			return rep, err
		}
		select {
		case <-ctx.Done():
			return rep, err
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, time.Second)
	}
}
