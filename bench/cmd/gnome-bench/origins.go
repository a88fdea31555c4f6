package main

import (
	"context"
	"net"
	"net/http"
	"strings"
	"time"
)

// Experiments are served on origins of their own: in development
// http://{slug}.localhost:<port>, which browsers and curl send to loopback
// but Go's resolver asks DNS for. Every client of the benchmarks dials
// *.localhost at 127.0.0.1 as a browser would.

var loopbackDialer = &net.Dialer{Timeout: 5 * time.Second, KeepAlive: 30 * time.Second}

// dialLocal dials addr, sending *.localhost names to 127.0.0.1.
func dialLocal(ctx context.Context, network, addr string) (net.Conn, error) {
	if host, port, err := net.SplitHostPort(addr); err == nil && (host == "localhost" || strings.HasSuffix(host, ".localhost")) {
		addr = net.JoinHostPort("127.0.0.1", port)
	}
	return loopbackDialer.DialContext(ctx, network, addr)
}

func init() {
	if t, ok := http.DefaultTransport.(*http.Transport); ok {
		t.DialContext = dialLocal
	}
}

// expURL is path on slug's development origin, on the edge at base
// (http://host:port).
func expURL(base, slug, path string) string {
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(base, "http://"))
	return "http://" + slug + ".localhost:" + port + path
}
