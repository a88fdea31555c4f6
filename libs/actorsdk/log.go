package actorsdk

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"time"
)

// Log writes to the platform's log, which adds the experiment, the time and
// the request's ID: Log.Info("clicked", "button", b).
var Log = slog.New(&logHandler{})

// Log levels of the host's log import.
const (
	levelDebug int32 = iota
	levelInfo
	levelWarn
	levelError
)

// logHandler renders a record as "message key=value ..." and hands it to
// the host with its level.
type logHandler struct {
	attrs  []slog.Attr // with their group prefix applied
	prefix string      // of the open groups, "a.b."
}

func (h *logHandler) Enabled(context.Context, slog.Level) bool { return true }

func (h *logHandler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	for _, a := range h.attrs {
		writeAttr(&b, "", a)
	}
	r.Attrs(func(a slog.Attr) bool {
		writeAttr(&b, h.prefix, a)
		return true
	})
	level := levelError
	switch {
	case r.Level < slog.LevelInfo:
		level = levelDebug
	case r.Level < slog.LevelWarn:
		level = levelInfo
	case r.Level < slog.LevelError:
		level = levelWarn
	}
	logOut(level, b.String())
	return nil
}

func (h *logHandler) WithAttrs(as []slog.Attr) slog.Handler {
	n := &logHandler{prefix: h.prefix, attrs: append([]slog.Attr(nil), h.attrs...)}
	for _, a := range as {
		n.attrs = append(n.attrs, slog.Attr{Key: h.prefix + a.Key, Value: a.Value})
	}
	return n
}

func (h *logHandler) WithGroup(name string) slog.Handler {
	if name == "" {
		return h
	}
	return &logHandler{attrs: h.attrs, prefix: h.prefix + name + "."}
}

func writeAttr(b *strings.Builder, prefix string, a slog.Attr) {
	v := a.Value.Resolve()
	if v.Kind() == slog.KindGroup {
		p := prefix
		if a.Key != "" {
			p += a.Key + "."
		}
		for _, g := range v.Group() {
			writeAttr(b, p, g)
		}
		return
	}
	if a.Key == "" {
		return
	}
	b.WriteByte(' ')
	b.WriteString(prefix + a.Key)
	b.WriteByte('=')
	var s string
	switch v.Kind() {
	case slog.KindTime:
		s = v.Time().Format(time.RFC3339Nano)
	default:
		s = v.String()
	}
	if s == "" || strings.ContainsAny(s, " \t\r\n\"=") {
		s = strconv.Quote(s)
	}
	b.WriteString(s)
}

// logOut is where log lines go; tests replace it.
var logOut = logSink
