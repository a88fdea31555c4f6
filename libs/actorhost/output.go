package actorhost

import (
	"bytes"
	"context"
	"log/slog"
	"time"
)

// What an instance may write to the platform's log. gnome.log has one
// budget, stdout and stderr together another (so that a chatty logger does
// not hide a panic's stack), each a bucket of OutputBurstLines lines and
// OutputBurstBytes bytes refilled at that much per second. Lines over
// MaxLogLine are cut. Output over the budget is dropped, with one warning
// each time dropping begins. The budget is checked before anything is read
// from the guest's memory, so a flood costs the host nothing but the check.
const (
	MaxLogLine       = 16 << 10
	OutputBurstLines = 100
	OutputBurstBytes = 256 << 10
)

// budget is a token bucket of lines and bytes.
type budget struct {
	lines, bytes float64
	last         time.Time
	dropping     bool
	dropped      int
}

func newBudget() *budget {
	return &budget{lines: OutputBurstLines, bytes: OutputBurstBytes, last: time.Now()}
}

func (b *budget) refill() {
	now := time.Now()
	s := now.Sub(b.last).Seconds()
	b.last = now
	b.lines = min(b.lines+s*OutputBurstLines, OutputBurstLines)
	b.bytes = min(b.bytes+s*OutputBurstBytes, OutputBurstBytes)
}

// room reports whether a line of at least one byte may be written.
func (b *budget) room() bool {
	b.refill()
	return b.lines >= 1 && b.bytes >= 1
}

// take spends one line of n bytes; false when the budget cannot pay it.
// started is true for the first refusal after a line went through: the
// moment to warn that output is being dropped.
func (b *budget) take(n int) (ok, started bool) {
	b.refill()
	if b.lines < 1 || b.bytes < float64(n) {
		return false, b.drop()
	}
	b.lines--
	b.bytes -= float64(n)
	b.dropping = false
	return true, false
}

// drop counts a line dropped without take; true when dropping starts.
func (b *budget) drop() bool {
	b.dropped++
	started := !b.dropping
	b.dropping = true
	return started
}

// warnDropped is the platform's own line saying that an instance's output
// is being dropped.
func warnDropped(ctx context.Context, log *slog.Logger, actor, what string, b *budget) {
	if log != nil {
		log.WarnContext(ctx, "actor output over its budget: dropping lines until it refills", "actor", actor, "what", what,
			"lines_per_second", OutputBurstLines, "bytes_per_second", OutputBurstBytes, "dropped_so_far", b.dropped)
	}
}

// outputWriter turns what the guest writes to stdout or stderr into log
// lines, within the instance's output budget. Writes come only from guest
// code, which runs in one call at a time.
type outputWriter struct {
	st     *callState
	stream string
	line   []byte // the unfinished line, at most MaxLogLine bytes
	open   bool   // a line has begun
	skip   bool   // the line begun is being dropped
	cut    bool   // the line begun was over MaxLogLine
}

func (w *outputWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		if !w.open {
			w.open = true
			// Decided before anything is copied: a line with no budget
			// left is skipped whole, however long it is.
			if w.skip = !w.st.out.room(); w.skip && w.st.out.drop() {
				warnDropped(w.st.context(), w.st.log, w.st.actor, w.stream, w.st.out)
			}
		}
		chunk, rest, ended := bytes.Cut(p, []byte{'\n'})
		p = rest
		if !w.skip {
			room := MaxLogLine - len(w.line)
			if len(chunk) > room {
				chunk, w.cut = chunk[:room], true
			}
			w.line = append(w.line, chunk...)
		}
		if ended {
			w.flush()
		}
	}
	return n, nil
}

// flush ends the line begun, writing it if the budget pays for it.
func (w *outputWriter) flush() {
	if !w.open {
		return
	}
	line, cut, skip := bytes.TrimRight(w.line, "\r"), w.cut, w.skip
	w.line, w.open, w.cut, w.skip = w.line[:0], false, false, false
	if skip {
		return
	}
	st := w.st
	ok, started := st.out.take(len(line))
	if !ok {
		if started {
			warnDropped(st.context(), st.log, st.actor, w.stream, st.out)
		}
		return
	}
	if st.log == nil {
		return
	}
	attrs := []any{"actor", st.actor, "stream", w.stream, "text", string(line)}
	if cut {
		attrs = append(attrs, "cut_at", MaxLogLine)
	}
	st.log.InfoContext(st.context(), "actor output", attrs...)
}
