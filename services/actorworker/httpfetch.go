package actorworker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bundle"
	"github.com/gnome-platform/gnome/libs/telemetry"
)

// The http.fetch host operation (docs/actors.md, section 5): an actor's
// HTTP requests to the hosts its manifest allows (actor.http.allow), within
// the bounds of actor.http and the platform's maximums.
//
// What a request may reach is checked twice. Before sending, its URL (and
// each redirect's) must be https (http in development), name an allowed
// host and not an IP address. Then, when connecting, every address the name
// resolves to is checked, and the socket's own address once more just
// before connect: loopback, private, link-local, metadata and the other
// ranges of forbiddenAddr are refused. Resolving happens only there, so a
// name that answers a public address to a first lookup and an internal one
// to the next (DNS rebinding) gains nothing. There is no setting that turns
// these checks off; tests reach a local server only through fields of
// fetchState that no configuration sets.

// Bounds of http.fetch that the manifest cannot change.
const (
	maxRedirects      = 5
	maxFetchURL       = 8 << 10
	maxFetchHeaders   = 64
	maxFetchHeaderLen = 32 << 10
	// maxResponseHeaders bounds the response's header block.
	maxResponseHeaders = 64 << 10
	dialTimeout        = 10 * time.Second
	// callReserve is kept of the actor's call time after a request times
	// out, so that the actor can still answer instead of being stopped
	// mid-call.
	callReserve = 200 * time.Millisecond
)

// hopHeaders are request headers the platform sets itself (or that would
// let a request reach something other than the host checked): refused.
var hopHeaders = map[string]bool{
	"Host": true, "Content-Length": true, "Transfer-Encoding": true, "Connection": true, "Keep-Alive": true,
	"Proxy-Authorization": true, "Proxy-Authenticate": true, "Proxy-Connection": true, "Te": true, "Trailer": true,
	"Upgrade": true, "Expect": true,
}

// resolver resolves a host name; net.DefaultResolver is one. Tests give a
// resolver of their own to make an allowed name resolve to a forbidden
// address.
type resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// fetchState is the worker's outbound HTTP: one transport (connections are
// pooled across actors; each request is checked on its own) and each
// experiment's budget of requests. Its zero value is ready to use.
type fetchState struct {
	// Test-only: no setting reaches these. testAllow lists local addresses
	// (with their port) that may be connected to despite forbiddenAddr;
	// testResolver replaces the system's resolver; testRoots replaces the
	// system's certificate authorities.
	testAllow    map[netip.AddrPort]bool
	testResolver resolver
	testRoots    *x509.CertPool

	once     sync.Once
	client   *http.Transport
	requests *prometheus.CounterVec
	seconds  prometheus.Histogram

	mu      sync.Mutex
	budgets map[string]*fetchBudget
}

func (f *fetchState) init(reg prometheus.Registerer) {
	f.once.Do(func() {
		f.client = &http.Transport{
			// Never a proxy from the environment: the checks must see the
			// address actually connected to.
			Proxy:                  nil,
			DialContext:            f.dial,
			ForceAttemptHTTP2:      true,
			TLSClientConfig:        &tls.Config{RootCAs: f.testRoots, MinVersion: tls.VersionTLS12},
			TLSHandshakeTimeout:    dialTimeout,
			MaxResponseHeaderBytes: maxResponseHeaders,
			MaxIdleConns:           64,
			MaxIdleConnsPerHost:    4,
			IdleConnTimeout:        90 * time.Second,
		}
		if reg == nil {
			reg = prometheus.NewRegistry()
		}
		f.requests = telemetry.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gnome_actor_http_requests_total",
			Help: "Outbound HTTP requests of actors (http.fetch), by outcome: the response's status class (2xx...) or the error code of a refusal or failure.",
		}, []string{"outcome"}))
		f.seconds = telemetry.Register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "gnome_actor_http_request_seconds",
			Help:    "Time of actors' outbound HTTP requests that were sent, redirects and reading the body included.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		}))
	})
}

func (f *fetchState) lookup(ctx context.Context, host string) ([]netip.Addr, error) {
	if f.testResolver != nil {
		return f.testResolver.LookupNetIP(ctx, "ip", host)
	}
	return net.DefaultResolver.LookupNetIP(ctx, "ip", host)
}

// addrRefusal is a connection refused because of the address it would
// reach.
type addrRefusal struct {
	host, why string
	addr      netip.Addr
}

func (e *addrRefusal) Error() string {
	return fmt.Sprintf("%s resolves to %s, a %s address, which actors may not reach", e.host, e.addr, e.why)
}

// permitted says why ap may not be connected to, or "".
func (f *fetchState) permitted(ap netip.AddrPort) string {
	if f.testAllow[netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())] {
		return ""
	}
	return forbiddenAddr(ap.Addr())
}

// dial resolves the host and connects to the first of its addresses that
// may be reached; when none may, the refusal names the first.
func (f *fetchState) dial(ctx context.Context, network, address string) (net.Conn, error) {
	host, portText, err := net.SplitHostPort(address)
	if err != nil {
		return nil, err
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("port %q: %w", portText, err)
	}
	var addrs []netip.Addr
	if a, err := netip.ParseAddr(host); err == nil {
		addrs = []netip.Addr{a}
	} else if addrs, err = f.lookup(ctx, host); err != nil {
		return nil, err
	}
	var refusal *addrRefusal
	var lastErr error
	d := net.Dialer{Timeout: dialTimeout, Control: f.control(host)}
	for _, a := range addrs {
		ap := netip.AddrPortFrom(a.Unmap(), uint16(port))
		if why := f.permitted(ap); why != "" {
			if refusal == nil {
				refusal = &addrRefusal{host: host, why: why, addr: a}
			}
			continue
		}
		c, err := d.DialContext(ctx, network, ap.String())
		if err == nil {
			return c, nil
		}
		lastErr = err
	}
	switch {
	case lastErr != nil:
		return nil, lastErr
	case refusal != nil:
		return nil, refusal
	}
	return nil, &net.DNSError{Err: "no addresses", Name: host, IsNotFound: true}
}

// control checks the address the socket is about to connect to, whatever
// led there: the last word before a packet leaves.
func (f *fetchState) control(host string) func(network, address string, _ syscall.RawConn) error {
	return func(network, address string, _ syscall.RawConn) error {
		ap, err := netip.ParseAddrPort(address)
		if err != nil {
			return &addrRefusal{host: host, why: "unparsable", addr: netip.Addr{}}
		}
		if why := f.permitted(ap); why != "" {
			return &addrRefusal{host: host, why: why, addr: ap.Addr()}
		}
		return nil
	}
}

// metadataAddrs are the cloud providers' instance metadata endpoints, named
// as such in refusals (all but Azure's host endpoint, a public address,
// fall in ranges refused anyway).
var metadataAddrs = []netip.Addr{
	netip.MustParseAddr("169.254.169.254"), netip.MustParseAddr("fd00:ec2::254"), netip.MustParseAddr("168.63.129.16"),
	netip.MustParseAddr("100.100.100.200"),
}

// Ranges actors may not reach beyond those netip classifies, with the name
// a refusal gives them.
var forbiddenRanges = []struct {
	prefix netip.Prefix
	why    string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "unspecified"},
	{netip.MustParsePrefix("100.64.0.0/10"), "shared (CGNAT)"},
	{netip.MustParsePrefix("192.0.0.0/24"), "reserved"},
	{netip.MustParsePrefix("192.0.2.0/24"), "documentation"},
	{netip.MustParsePrefix("198.18.0.0/15"), "benchmarking"},
	{netip.MustParsePrefix("198.51.100.0/24"), "documentation"},
	{netip.MustParsePrefix("203.0.113.0/24"), "documentation"},
	{netip.MustParsePrefix("240.0.0.0/4"), "reserved"},
	{netip.MustParsePrefix("::/96"), "IPv4-compatible"},
	{netip.MustParsePrefix("100::/64"), "discard"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "local NAT64"},
	{netip.MustParsePrefix("2001::/32"), "Teredo"},
	{netip.MustParsePrefix("2001:db8::/32"), "documentation"},
	{netip.MustParsePrefix("fec0::/10"), "site-local"},
}

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

// forbiddenAddr says what kind of address actors may not reach a is, or ""
// when a is a public unicast address. IPv4 addresses in IPv6 clothing
// (mapped, NAT64, 6to4) are judged by the IPv4 address inside.
func forbiddenAddr(a netip.Addr) string {
	if !a.IsValid() {
		return "invalid"
	}
	a = a.Unmap()
	if a.Is6() {
		b := a.As16()
		switch {
		case nat64.Contains(a):
			return forbiddenAddr(netip.AddrFrom4([4]byte(b[12:16])))
		case sixToFour.Contains(a):
			return forbiddenAddr(netip.AddrFrom4([4]byte(b[2:6])))
		}
	}
	for _, r := range metadataAddrs {
		if r == a {
			return "cloud metadata"
		}
	}
	switch {
	case a.IsUnspecified():
		return "unspecified"
	case a.IsLoopback():
		return "loopback"
	case a.IsPrivate():
		return "private"
	case a.IsLinkLocalUnicast():
		return "link-local"
	case a.IsMulticast(), a.IsLinkLocalMulticast(), a.IsInterfaceLocalMulticast():
		return "multicast"
	}
	for _, r := range forbiddenRanges {
		if r.prefix.Contains(a) {
			return r.why
		}
	}
	if !a.IsGlobalUnicast() {
		return "reserved"
	}
	return ""
}

// fetchBudget is one experiment's requests on this worker: those in
// flight, and a bucket of RequestsPerMinute tokens refilled at that rate.
type fetchBudget struct {
	mu       sync.Mutex
	tokens   float64
	last     time.Time
	inFlight int
}

// refill brings the bucket to now; it holds the lock.
func (b *fetchBudget) refill(now time.Time, perMinute int) {
	b.tokens = min(float64(perMinute), b.tokens+now.Sub(b.last).Minutes()*float64(perMinute))
	b.last = now
}

// take admits one request, or says why not; a request admitted must call
// done.
func (b *fetchBudget) take(now time.Time, lim bundle.HTTPLimits) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.refill(now, lim.RequestsPerMinute)
	if b.inFlight >= lim.MaxConcurrent {
		return apierr.New(apierr.CodeRateLimited, "%d outbound requests are in flight already, the limit (actor.http.max_concurrent)", b.inFlight)
	}
	if b.tokens < 1 {
		wait := time.Duration((1 - b.tokens) / float64(lim.RequestsPerMinute) * float64(time.Minute))
		return apierr.New(apierr.CodeRateLimited, "over %d outbound requests per minute (actor.http.requests_per_minute); the next is possible in %v",
			lim.RequestsPerMinute, wait.Round(time.Millisecond))
	}
	b.tokens--
	b.inFlight++
	return nil
}

func (b *fetchBudget) done() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.inFlight--
}

// budget is slug's budget. A budget left alone for a minute has a full
// bucket and nothing in flight, like a new one, so such budgets are
// dropped as new ones come.
func (f *fetchState) budget(slug string, now time.Time, lim bundle.HTTPLimits) *fetchBudget {
	f.mu.Lock()
	defer f.mu.Unlock()
	if b := f.budgets[slug]; b != nil {
		return b
	}
	if f.budgets == nil {
		f.budgets = map[string]*fetchBudget{}
	}
	for s, b := range f.budgets {
		b.mu.Lock()
		idle := b.inFlight == 0 && now.Sub(b.last) > time.Minute
		b.mu.Unlock()
		if idle {
			delete(f.budgets, s)
		}
	}
	b := &fetchBudget{tokens: float64(lim.RequestsPerMinute), last: now}
	f.budgets[slug] = b
	return b
}

// opBound is how long the host operation op may take: the host call bound,
// longer for http.fetch, whose own timeout (actor.http.timeout_ms) and the
// call's time limit bound it.
func opBound(op string, hostCall time.Duration) time.Duration {
	if op == "http.fetch" {
		return max(hostCall, time.Duration(bundle.HTTPMaximums.TimeoutMS)*time.Millisecond+time.Second)
	}
	return hostCall
}

type fetchReq struct {
	Method      string              `json:"method"`
	URL         string              `json:"url"`
	Headers     map[string][]string `json:"headers"`
	Body        []byte              `json:"body"`
	TimeoutMS   int                 `json:"timeout_ms"`
	NoRedirects bool                `json:"no_redirects"`
}

type fetchRes struct {
	Status  int                 `json:"status"`
	Headers map[string][]string `json:"headers"`
	Body    []byte              `json:"body"`
	URL     string              `json:"url"`
}

// httpFetch is the http.fetch host operation.
func (h *host) httpFetch(ctx context.Context, req []byte) (any, error) {
	f := &h.s.fetch
	f.init(h.s.d.Telemetry.Registry)
	res, outcome, err := h.fetch(ctx, f, req)
	if err != nil {
		outcome = string(apierr.From(err).Code)
	}
	f.requests.WithLabelValues(outcome).Inc()
	return res, err
}

func (h *host) fetch(ctx context.Context, f *fetchState, raw []byte) (any, string, error) {
	var r fetchReq
	if err := decode(raw, &r); err != nil {
		return nil, "", err
	}
	if h.http == nil {
		return nil, "", apierr.New(apierr.CodeHttpForbiddenHost, "the manifest allows no outbound HTTP: list the hosts in actor.http.allow")
	}
	lim := h.http.Limits()
	method := strings.ToUpper(r.Method)
	if method == "" {
		method = http.MethodGet
	}
	if len(method) > 16 || !isToken(method) || method == http.MethodConnect {
		return nil, "", apierr.New(apierr.CodeBadRequest, "method %q is not an HTTP method actors may send", r.Method).OnField("/method")
	}
	u, err := h.checkURL(r.URL, "/url")
	if err != nil {
		return nil, "", err
	}
	header, err := checkHeaders(r.Headers)
	if err != nil {
		return nil, "", err
	}
	if len(r.Body) > lim.MaxRequestBytes {
		return nil, "", apierr.New(apierr.CodePayloadTooLarge, "the request body is %d bytes, over the limit of %d (actor.http.max_request_bytes)",
			len(r.Body), lim.MaxRequestBytes).OnField("/body")
	}
	if r.TimeoutMS < 0 {
		return nil, "", apierr.New(apierr.CodeBadRequest, "timeout_ms must not be negative").OnField("/timeout_ms")
	}
	timeout := time.Duration(lim.TimeoutMS) * time.Millisecond
	if r.TimeoutMS > 0 {
		timeout = min(timeout, time.Duration(r.TimeoutMS)*time.Millisecond)
	}
	limitName := "actor.http.timeout_ms"
	if dl, ok := ctx.Deadline(); ok {
		left := time.Until(dl)
		if left-min(left/5, callReserve) < timeout {
			timeout, limitName = left-min(left/5, callReserve), "the actor's call time limit"
		}
	}
	if timeout <= 0 {
		return nil, "", apierr.New(apierr.CodeTimeout, "no time is left in the call for an outbound request")
	}

	b := f.budget(h.slug, time.Now(), lim)
	if err := b.take(time.Now(), lim); err != nil {
		return nil, "", err
	}
	defer b.done()

	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var body io.Reader
	if len(r.Body) > 0 {
		body = strings.NewReader(string(r.Body))
	}
	hreq, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, "", apierr.Wrap(apierr.CodeBadRequest, err, "the request cannot be sent: "+err.Error())
	}
	hreq.Header = header
	client := &http.Client{
		Transport: tracedTransport{next: f.client, slug: h.slug},
		CheckRedirect: func(next *http.Request, via []*http.Request) error {
			if r.NoRedirects {
				return http.ErrUseLastResponse
			}
			if len(via) > maxRedirects {
				return apierr.New(apierr.CodeHttpFailed, "more than %d redirects, from %s", maxRedirects, u.Hostname())
			}
			_, err := h.checkURL(next.URL.String(), "")
			return err
		},
	}
	start := time.Now()
	resp, err := client.Do(hreq)
	if err != nil {
		f.seconds.Observe(time.Since(start).Seconds())
		return nil, "", h.fetchError(ctx, err, u.Hostname(), timeout, limitName)
	}
	defer func() { _ = resp.Body.Close() }()
	final := resp.Request.URL
	if resp.ContentLength > int64(lim.MaxResponseBytes) {
		f.seconds.Observe(time.Since(start).Seconds())
		return nil, "", apierr.New(apierr.CodeHttpResponseTooLarge, "the response of %s is %d bytes, over the limit of %d (actor.http.max_response_bytes)",
			final.Hostname(), resp.ContentLength, lim.MaxResponseBytes)
	}
	data, err := io.ReadAll(io.LimitReader(resp.Body, int64(lim.MaxResponseBytes)+1))
	f.seconds.Observe(time.Since(start).Seconds())
	if err != nil {
		return nil, "", h.fetchError(ctx, err, final.Hostname(), timeout, limitName)
	}
	if len(data) > lim.MaxResponseBytes {
		return nil, "", apierr.New(apierr.CodeHttpResponseTooLarge, "the response of %s is over the limit of %d bytes (actor.http.max_response_bytes)",
			final.Hostname(), lim.MaxResponseBytes)
	}
	return fetchRes{Status: resp.StatusCode, Headers: resp.Header, Body: data, URL: final.String()},
		fmt.Sprintf("%dxx", resp.StatusCode/100), nil
}

// checkURL refuses a URL the actor may not send to: field names the
// request's field for the first URL and is empty for redirects.
func (h *host) checkURL(raw, field string) (*url.URL, error) {
	where := "the URL"
	if field == "" {
		where = "a redirect"
	}
	on := func(e *apierr.Error) *apierr.Error {
		if field != "" {
			return e.OnField(field)
		}
		return e
	}
	if raw == "" {
		return nil, on(apierr.New(apierr.CodeBadRequest, "url is required"))
	}
	if len(raw) > maxFetchURL {
		return nil, on(apierr.New(apierr.CodeBadRequest, "%s is over %d bytes", where, maxFetchURL))
	}
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || u.Opaque != "" {
		return nil, on(apierr.New(apierr.CodeBadRequest, "%s is not an absolute http or https URL", where))
	}
	production := h.s.d.Config.IsProduction()
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && !production:
	case u.Scheme == "http":
		return nil, on(apierr.New(apierr.CodeHttpForbiddenScheme, "%s is http://%s: actors send https only in production", where, u.Hostname()))
	default:
		return nil, on(apierr.New(apierr.CodeHttpForbiddenScheme, "%s has the scheme %q: actors send http and https only", where, u.Scheme))
	}
	if u.User != nil {
		return nil, on(apierr.New(apierr.CodeBadRequest, "%s carries credentials (user@host): send them in a header", where))
	}
	// Names are case-insensitive; one spelling keeps the checks and the
	// resolver on the same name.
	u.Host = strings.ToLower(u.Host)
	host := u.Hostname()
	if _, err := netip.ParseAddr(host); err == nil {
		return nil, on(apierr.New(apierr.CodeHttpForbiddenHost, "%s names the IP address %s: actors reach hosts by name only", where, host))
	}
	if !h.http.Allows(host) {
		return nil, on(apierr.New(apierr.CodeHttpForbiddenHost, "%s names the host %q, which actor.http.allow does not list", where, host))
	}
	if p := u.Port(); p != "" {
		if n, err := strconv.Atoi(p); err != nil || n < 1 || n > 65535 {
			return nil, on(apierr.New(apierr.CodeBadRequest, "%s has the port %q", where, p))
		}
	}
	u.Fragment, u.RawFragment = "", ""
	return u, nil
}

func checkHeaders(in map[string][]string) (http.Header, error) {
	if len(in) > maxFetchHeaders {
		return nil, apierr.New(apierr.CodeBadRequest, "%d headers, over the limit of %d", len(in), maxFetchHeaders).OnField("/headers")
	}
	out := make(http.Header, len(in))
	size := 0
	for name, values := range in {
		if name == "" || !isToken(name) {
			return nil, apierr.New(apierr.CodeBadRequest, "%q is not a header name", name).OnField("/headers")
		}
		key := http.CanonicalHeaderKey(name)
		if hopHeaders[key] || strings.HasPrefix(key, "Proxy-") {
			return nil, apierr.New(apierr.CodeBadRequest, "the header %s is set by the platform, not by actors", key).OnField("/headers/" + name)
		}
		for _, v := range values {
			if strings.ContainsAny(v, "\r\n\x00") {
				return nil, apierr.New(apierr.CodeBadRequest, "the header %s has a line break or NUL in its value", key).OnField("/headers/" + name)
			}
			size += len(key) + len(v) + 4
			out[key] = append(out[key], v)
		}
	}
	if size > maxFetchHeaderLen {
		return nil, apierr.New(apierr.CodeBadRequest, "the headers are %d bytes, over the limit of %d", size, maxFetchHeaderLen).OnField("/headers")
	}
	return out, nil
}

func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0) {
			return false
		}
	}
	return true
}

// fetchError turns a failed request into the catalogue's codes. Its
// messages name the host only: a URL may carry a key in its query.
func (h *host) fetchError(ctx context.Context, err error, host string, timeout time.Duration, limitName string) error {
	var ae *apierr.Error
	if errors.As(err, &ae) {
		return ae
	}
	var refusal *addrRefusal
	if errors.As(err, &refusal) {
		// Operators want to see attempts at the platform's own network;
		// the line names the host and address, never the URL or headers.
		h.log.WarnContext(ctx, "actor outbound request refused: forbidden address", "host", refusal.host, "addr", refusal.addr.String(), "kind", refusal.why)
		return apierr.New(apierr.CodeHttpForbiddenAddress, "%s", refusal.Error())
	}
	if ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) {
		return apierr.New(apierr.CodeTimeout, "the request to %s did not finish within %v (%s)", host, timeout.Round(time.Millisecond), limitName)
	}
	var dnsErr *net.DNSError
	if errors.As(err, &dnsErr) {
		if dnsErr.IsNotFound {
			return apierr.New(apierr.CodeHttpFailed, "%s does not resolve", dnsErr.Name)
		}
		return apierr.New(apierr.CodeHttpFailed, "%s could not be resolved: %s", dnsErr.Name, dnsErr.Err)
	}
	var certErr *tls.CertificateVerificationError
	var hostErr x509.HostnameError
	var authErr x509.UnknownAuthorityError
	var invalidErr x509.CertificateInvalidError
	if errors.As(err, &certErr) || errors.As(err, &hostErr) || errors.As(err, &authErr) || errors.As(err, &invalidErr) {
		return apierr.New(apierr.CodeHttpFailed, "the certificate of %s is not valid for it: %s", host, innermost(err))
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) && opErr.Op == "dial" {
		return apierr.New(apierr.CodeHttpFailed, "no connection to %s: %s", host, innermost(err))
	}
	return apierr.New(apierr.CodeHttpFailed, "the request to %s failed: %s", host, innermost(err))
}

// innermost is the text of err without the URL that url.Error puts first.
func innermost(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return err.Error()
}

// tracedTransport makes a client span of each request sent (redirects are
// requests of their own). Spans carry the method, host, port and status,
// never the path, query, headers or body, which may hold keys. No trace
// context is sent: remote servers are not the platform's to correlate.
type tracedTransport struct {
	next http.RoundTripper
	slug string
}

func (t tracedTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	port := r.URL.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[r.URL.Scheme]
	}
	n, _ := strconv.Atoi(port)
	ctx, span := otel.Tracer(tracerName).Start(r.Context(), "HTTP "+r.Method, trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String("gnome.slug", t.slug), attribute.String("http.request.method", r.Method),
			attribute.String("server.address", r.URL.Hostname()), attribute.Int("server.port", n), attribute.String("url.scheme", r.URL.Scheme)))
	defer span.End()
	resp, err := t.next.RoundTrip(r.WithContext(ctx))
	if err != nil {
		kind := "request failed"
		var refusal *addrRefusal
		if errors.As(err, &refusal) {
			kind = "forbidden address"
		}
		span.SetStatus(codes.Error, kind)
		return nil, err
	}
	span.SetAttributes(attribute.Int("http.response.status_code", resp.StatusCode))
	if resp.StatusCode >= 500 {
		span.SetStatus(codes.Error, strconv.Itoa(resp.StatusCode))
	}
	return resp, nil
}
