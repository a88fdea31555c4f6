package authz

import (
	"fmt"
	"log/slog"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nuid"
)

// SubjectChanged is where policy changes are announced.
const SubjectChanged = "gnome.authz.changed"

// Watcher is a Casbin watcher on NATS: Update announces a change, and every
// watcher (every process) reloads its policy when one is announced.
type Watcher struct {
	nc          *nats.Conn
	sub         *nats.Subscription
	origin      string
	mu          sync.Mutex
	callback    func(string)
	onReconnect func()
	log         *slog.Logger
}

// NewWatcher subscribes to policy change announcements.
func NewWatcher(nc *nats.Conn, log *slog.Logger) (*Watcher, error) {
	if log == nil {
		log = slog.Default()
	}
	w := &Watcher{nc: nc, origin: nuid.Next(), log: log}
	sub, err := nc.Subscribe(SubjectChanged, func(m *nats.Msg) {
		w.mu.Lock()
		cb := w.callback
		w.mu.Unlock()
		if cb != nil {
			cb(string(m.Data))
		}
	})
	if err != nil {
		return nil, fmt.Errorf("subscribe to policy changes: %w", err)
	}
	w.sub = sub
	nc.SetReconnectHandler(chainReconnect(nc, func() {
		if w.onReconnect != nil {
			w.onReconnect()
		}
	}))
	return w, nil
}

// chainReconnect keeps an existing reconnect handler running.
func chainReconnect(nc *nats.Conn, f func()) nats.ConnHandler {
	prev := nc.Opts.ReconnectedCB
	return func(c *nats.Conn) {
		if prev != nil {
			prev(c)
		}
		f()
	}
}

// SetUpdateCallback is called by Casbin with the reload to run on a change.
func (w *Watcher) SetUpdateCallback(cb func(string)) error {
	w.mu.Lock()
	w.callback = cb
	w.mu.Unlock()
	return nil
}

// Update announces a change to every watcher, this one included, and waits
// until the server has it.
func (w *Watcher) Update() error {
	if err := w.nc.Publish(SubjectChanged, []byte(w.origin)); err != nil {
		return fmt.Errorf("announce policy change: %w", err)
	}
	return w.nc.Flush()
}

// Close unsubscribes.
func (w *Watcher) Close() { _ = w.sub.Unsubscribe() }
