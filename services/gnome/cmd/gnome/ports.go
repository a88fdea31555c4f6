package main

import (
	"errors"
	"fmt"
	"net"
	"syscall"

	"github.com/gnome-platform/gnome/libs/config"
)

// listenAddr is an address the server will listen on, with what chose it
// (a setting or a flag), for the message when it is taken.
type listenAddr struct {
	addr, setBy string
	// or is another way out, when there is one.
	or string
}

// serveAddrs are the addresses gnome serve listens on with cfg: the web
// server, and the embedded NATS server and store when they are started.
func serveAddrs(cfg *config.Config, web bool, httpSetBy string) []listenAddr {
	var out []listenAddr
	if web {
		out = append(out, listenAddr{addr: cfg.HTTPAddr, setBy: httpSetBy})
	}
	if cfg.NATSURL == "" {
		out = append(out, listenAddr{cfg.EmbeddedNATSAddr, "EMBEDDED_NATS_ADDR", " (or NATS_URL to an existing NATS server)"})
	}
	if cfg.MongoURI == "" {
		out = append(out, listenAddr{cfg.EmbeddedStoreAddr, "EMBEDDED_STORE_ADDR", " (or MONGO_URI to an existing MongoDB)"})
	}
	return out
}

// checkPorts tries each address before anything starts, so that a taken
// port is a one-line message naming what chose it, not an error from deep
// inside a half-started platform (the embedded store, say, after NATS has
// begun). A port that frees itself in between still fails later, plainly.
func checkPorts(addrs []listenAddr) error {
	for _, a := range addrs {
		ln, err := net.Listen("tcp", a.addr)
		if err != nil {
			why := "cannot be listened on"
			if errors.Is(err, syscall.EADDRINUSE) {
				why = "is in use (by another gnome serve, or another program)"
			}
			return fmt.Errorf("port taken: %s %s %s: %w; set %s to a free address%s", a.setBy, a.addr, why, err, a.setBy, a.or)
		}
		_ = ln.Close()
	}
	return nil
}
