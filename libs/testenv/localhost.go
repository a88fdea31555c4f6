package testenv

import (
	"context"
	"net"
	"net/http"
	"strings"
	"time"
)

// LocalhostTransport is an HTTP transport that reaches every *.localhost
// name at 127.0.0.1, as browsers and curl do (Go's resolver asks DNS for
// them): experiments' development origins are http://{slug}.localhost:port.
func LocalhostTransport() *http.Transport {
	d := &net.Dialer{Timeout: 5 * time.Second}
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		if host, port, err := net.SplitHostPort(addr); err == nil && (host == "localhost" || strings.HasSuffix(host, ".localhost")) {
			addr = net.JoinHostPort("127.0.0.1", port)
		}
		return d.DialContext(ctx, network, addr)
	}
	return t
}

// ExperimentURL is the development origin of slug on the edge listening at
// addr (host:port), followed by path.
func ExperimentURL(addr, slug, path string) string {
	_, port, _ := net.SplitHostPort(addr)
	return "http://" + slug + ".localhost:" + port + path
}
