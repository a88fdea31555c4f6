package bus

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/micro"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/contract"
	"github.com/gnome-platform/gnome/libs/telemetry"
)

const tracerName = "github.com/gnome-platform/gnome/libs/bus"

// QueueGroup is the queue group every instance of a service joins, so that
// each request reaches exactly one instance.
const QueueGroup = "gnome"

// Subject is the request subject of a service's endpoint: gnome.<service>.<endpoint>.
func Subject(service, endpoint string) string { return contract.Subject(service, endpoint) }

// Server is one instance of a named service on the bus. Its handlers run
// concurrently (up to a bound), unlike plain micro handlers which a
// subscription serialises.
type Server struct {
	svc  micro.Service
	nc   *nats.Conn
	name string
	log  *slog.Logger
	sem  chan struct{}
	wg   sync.WaitGroup

	// mu orders admissions (wg.Add) before Stop's wait: requests still
	// buffered when Stop drains the subscriptions arrive after it.
	mu       sync.Mutex
	stopping bool

	identify func(ctx context.Context, c *contract.Caller) error
}

// ServerOptions describe the instance.
type ServerOptions struct {
	Name        string
	Version     string
	Description string
	InstanceID  string
	// Concurrency bounds handlers running at once; 64 when zero.
	Concurrency int
	Log         *slog.Logger
	// Identify, when set, replaces the caller of every request that names
	// one (a request type with a CallerOf method) by the identity its token
	// proves, or refuses the request with its error, before the handler
	// runs: handlers act on verified identity only. libs/svc sets it for
	// every service.
	Identify func(ctx context.Context, c *contract.Caller) error
}

// callerRequest is a request that names its caller (uploadapi, exportapi).
type callerRequest interface{ CallerOf() *contract.Caller }

type identifyKey struct{}

// NewServer registers a micro service (visible to $SRV.PING/INFO/STATS
// discovery) in the platform's queue group.
func NewServer(nc *nats.Conn, o ServerOptions) (*Server, error) {
	if o.Concurrency <= 0 {
		o.Concurrency = 64
	}
	if o.Log == nil {
		o.Log = slog.Default()
	}
	svc, err := micro.AddService(nc, micro.Config{
		Name:        o.Name,
		Version:     o.Version,
		Description: o.Description,
		QueueGroup:  QueueGroup,
		Metadata:    map[string]string{"instance": o.InstanceID, "started_at": time.Now().UTC().Format(time.RFC3339)},
	})
	if err != nil {
		return nil, fmt.Errorf("register %s service on nats: %w", o.Name, err)
	}
	return &Server{svc: svc, nc: nc, name: o.Name, log: o.Log, sem: make(chan struct{}, o.Concurrency), identify: o.Identify}, nil
}

// ID is this instance's micro service ID.
func (s *Server) ID() string { return s.svc.Info().ID }

// Handle serves endpoint at gnome.<service>.<endpoint> with h. When it
// returns, the server knows the subscription: requests from any connection
// reach it.
func (s *Server) Handle(endpoint string, h RawHandler) error {
	subject := Subject(s.name, endpoint)
	tracer := otel.Tracer(tracerName)
	// micro endpoint names allow no dots; the subject keeps them.
	name := strings.ReplaceAll(endpoint, ".", "_")
	err := s.svc.AddEndpoint(name, micro.HandlerFunc(func(req micro.Request) {
		if !s.admit() {
			// Stop is waiting for the handlers it knows of: refuse at once
			// rather than run after it returned.
			ae := apierr.New(apierr.CodeUnavailable, "service %s is stopping", s.name)
			body, _ := json.Marshal(ae.ToBody(nats.Header(req.Headers()).Get(HeaderRequestID)).Error)
			_ = req.Error(string(ae.Code), ae.Message, body)
			return
		}
		s.sem <- struct{}{}
		// The handler answers after micro's callback returned, so it must
		// not touch req then (micro reads it for its statistics): it keeps
		// what it needs and publishes the reply itself.
		reply, data, hdr := req.Reply(), req.Data(), nats.Header(req.Headers())
		go func() {
			defer func() { <-s.sem; s.wg.Done() }()
			ctx, rid := Extract(context.Background(), hdr)
			ctx = telemetry.WithRequestID(ctx, rid)
			if s.identify != nil {
				ctx = context.WithValue(ctx, identifyKey{}, s.identify)
			}
			ctx, span := tracer.Start(ctx, subject, trace.WithSpanKind(trace.SpanKindServer),
				trace.WithAttributes(attribute.String("messaging.system", "nats"), attribute.String("messaging.destination.name", subject)))
			defer span.End()
			out, err := safeCall(ctx, h, data)
			if err != nil {
				ae := apierr.From(err)
				span.SetStatus(codes.Error, string(ae.Code))
				switch {
				case ae.Code == apierr.CodeInternal:
					span.RecordError(err)
					s.log.ErrorContext(ctx, "handler failed", "subject", subject, "err", err)
				case ae.Code == apierr.CodeUnavailable && errors.Unwrap(ae) != nil:
					// An outage met on the way (the caller gets 503): its
					// cause is for the operator.
					span.RecordError(err)
					s.log.WarnContext(ctx, "handler met an outage", "subject", subject, "err", err)
				}
				be := ae.ToBody(rid).Error
				if be.Code == "" {
					be.Code = apierr.CodeInternal
				}
				if be.Message == "" {
					// micro sends no reply at all without a description.
					be.Message = be.Code.Description()
					if be.Message == "" {
						be.Message = string(be.Code)
					}
				}
				body, _ := json.Marshal(be)
				if rerr := s.reply(reply, body, string(be.Code), be.Message); rerr != nil {
					s.log.ErrorContext(ctx, "error reply failed", "subject", subject, "err", rerr)
				}
				return
			}
			if rerr := s.reply(reply, out, "", ""); rerr != nil {
				s.log.ErrorContext(ctx, "reply failed", "subject", subject, "err", rerr)
			}
		}()
	}), micro.WithEndpointSubject(subject))
	if err != nil {
		return err
	}
	if err := s.nc.Flush(); err != nil {
		return fmt.Errorf("confirm subscription to %s: %w", subject, err)
	}
	return nil
}

// reply answers a request as micro does: the body, and for an error the
// micro error headers with its code and description.
func (s *Server) reply(to string, body []byte, code, description string) error {
	if to == "" {
		return nil // a request nobody waits for
	}
	msg := &nats.Msg{Subject: to, Data: body}
	if code != "" {
		msg.Header = nats.Header{micro.ErrorHeader: []string{description}, micro.ErrorCodeHeader: []string{code}}
	}
	return s.nc.PublishMsg(msg)
}

// admit counts a request in unless Stop has begun.
func (s *Server) admit() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return false
	}
	s.wg.Add(1)
	return true
}

func safeCall(ctx context.Context, h RawHandler, data []byte) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("handler panic: %v", r)
		}
	}()
	return h(ctx, data)
}

// Stop leaves the queue group (new requests go to other instances) and waits
// for the handlers still running, up to ctx's deadline.
func (s *Server) Stop(ctx context.Context) error {
	err := s.svc.Stop()
	s.mu.Lock()
	s.stopping = true
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return fmt.Errorf("stop %s: handlers still running: %w", s.name, ctx.Err())
	}
	return err
}

// Registration is a handler bound to one of the server's endpoints; make
// it with Endpoint.
type Registration struct {
	service, name string
	h             RawHandler
}

// Endpoint binds fn to a contract endpoint: the subject and the types come
// from the contract, so the handler cannot disagree with its clients.
func Endpoint[Req, Rep any](e contract.Endpoint[Req, Rep], fn func(ctx context.Context, req Req) (Rep, error)) Registration {
	return Registration{service: e.Service, name: e.Name, h: JSON(fn)}
}

// Register serves each registration; each must be an endpoint of this
// server's service.
func (s *Server) Register(rs ...Registration) error {
	for _, r := range rs {
		if r.service != s.name {
			return fmt.Errorf("register %s.%s on the %s service", r.service, r.name, s.name)
		}
		if err := s.Handle(r.name, r.h); err != nil {
			return err
		}
	}
	return nil
}

// Client is the contract.Transport over NATS request/reply: what typed
// contract clients call through.
type Client struct{ NC *nats.Conn }

// Request implements contract.Transport.
func (c Client) Request(ctx context.Context, subject string, req, reply any) error {
	data, err := json.Marshal(req)
	if err != nil {
		return fmt.Errorf("encode request for %s: %w", subject, err)
	}
	raw, err := CallRaw(ctx, c.NC, subject, data)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(raw, reply); err != nil {
		return apierr.Wrap(apierr.CodeBadGateway, err, "service reply could not be read")
	}
	return nil
}

var _ contract.Transport = Client{}

// RawHandler answers a request body with a reply body.
type RawHandler func(ctx context.Context, data []byte) ([]byte, error)

// JSON adapts a typed handler: the request is decoded (an undecodable one is
// invalid_json) and the reply encoded.
func JSON[Req, Resp any](fn func(ctx context.Context, req Req) (Resp, error)) RawHandler {
	return func(ctx context.Context, data []byte) ([]byte, error) {
		var req Req
		if len(data) > 0 {
			if err := json.Unmarshal(data, &req); err != nil {
				return nil, apierr.Wrap(apierr.CodeInvalidJson, err, "request is not valid JSON")
			}
		}
		if cr, ok := any(&req).(callerRequest); ok {
			if identify, _ := ctx.Value(identifyKey{}).(func(context.Context, *contract.Caller) error); identify != nil {
				if err := identify(ctx, cr.CallerOf()); err != nil {
					return nil, err
				}
			}
		}
		resp, err := fn(ctx, req)
		if err != nil {
			return nil, err
		}
		return json.Marshal(resp)
	}
}

// Call sends req to subject and decodes the reply into a Resp. A service
// error comes back as the same *apierr.Error; no instance listening is
// unavailable, and so is no answer in time. Services call each other
// through their contracts' typed clients instead (libs/contract).
func Call[Resp any](ctx context.Context, nc *nats.Conn, subject string, req any) (Resp, error) {
	var resp Resp
	err := Client{nc}.Request(ctx, subject, req, &resp)
	return resp, err
}

// DefaultTimeout bounds a Call whose context has no deadline.
const DefaultTimeout = 5 * time.Second

// CallRaw is Call without the JSON.
func CallRaw(ctx context.Context, nc *nats.Conn, subject string, data []byte) ([]byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	ctx, span := otel.Tracer(tracerName).Start(ctx, subject, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("messaging.system", "nats"), attribute.String("messaging.destination.name", subject)))
	defer span.End()
	msg := nats.NewMsg(subject)
	msg.Data = data
	Inject(ctx, msg.Header, telemetry.RequestID(ctx))
	reply, err := nc.RequestMsgWithContext(ctx, msg)
	if err != nil {
		span.SetStatus(codes.Error, err.Error())
		switch {
		case errors.Is(err, nats.ErrNoResponders):
			ae := apierr.Wrap(apierr.CodeUnavailable, fmt.Errorf("%w: %w", contract.ErrUnanswered, ErrNoResponders), "service "+subject+" is not available")
			ae.RetryAfter = apierr.DefaultRetryAfter
			return nil, ae
		case errors.Is(err, context.DeadlineExceeded), errors.Is(err, nats.ErrTimeout):
			// A service that does not answer in time is one that died with
			// the request or is overloaded: the caller may try again, as
			// with any other outage (503, not 504).
			ae := apierr.Wrap(apierr.CodeUnavailable, fmt.Errorf("%w: %w", contract.ErrUnanswered, err), "service "+subject+" did not answer in time")
			ae.RetryAfter = apierr.DefaultRetryAfter
			return nil, ae
		}
		ae := apierr.Wrap(apierr.CodeUnavailable, fmt.Errorf("%w: %w", contract.ErrUnanswered, err), "service "+subject+" could not be reached")
		ae.RetryAfter = apierr.DefaultRetryAfter
		return nil, ae
	}
	if code := reply.Header.Get(HeaderErrorCode); code != "" {
		var be apierr.BodyError
		if json.Unmarshal(reply.Data, &be) != nil || be.Code == "" {
			be = apierr.BodyError{Code: apierr.Code(code), Message: reply.Header.Get(HeaderError)}
		}
		span.SetStatus(codes.Error, string(be.Code))
		return nil, apierr.FromBody(be)
	}
	return reply.Data, nil
}
