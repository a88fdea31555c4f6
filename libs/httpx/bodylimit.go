package httpx

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"io"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/gnome-platform/gnome/libs/apierr"
)

// BodyLimitFunc tells the largest body a request may declare, judged from
// its method and path alone: it runs as soon as the headers have arrived,
// before routing and before any byte of the body is read. path is the
// request line's path without the query, as the client sent it (undecoded,
// as Fiber routes it); neither string may be kept after the call. max <= 0
// means no limit of its own. refusal is the error to answer with (nil: a
// payload_too_large naming the sizes).
type BodyLimitFunc func(method, path string) (max int64, refusal error)

// declaredHeader carries, from the server's header hook to the chain, that a
// request was refused by its declared length. Its value starts with a
// secret of this process, so a client cannot forge the verdict.
const declaredHeader = "X-Gnome-Refused-Length"

var declaredSecret = func() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}()

// hookDeclaredBodies makes srv refuse, unread, a body whose declared
// Content-Length is over its route's limit. Fasthttp reads the first bytes
// of a body before any handler runs (and after sending 100 Continue when
// asked to), so a stalled over-limit body would hold the request until the
// read timeout. The hook therefore, before that read: drops Expect (no
// 100 Continue invites the body), sets the length to 0 (nothing is read),
// marks the request to be closed after its answer (the body still on the
// wire is not a next request), and leaves the verdict for RefuseDeclared.
func hookDeclaredBodies(srv *fasthttp.Server, limit BodyLimitFunc) {
	prev := srv.HeaderReceived
	srv.HeaderReceived = func(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
		var rc fasthttp.RequestConfig
		if prev != nil {
			rc = prev(h)
		}
		n := h.ContentLength()
		if n <= 0 {
			return rc
		}
		if max, _ := limit(string(h.Method()), requestPath(h.RequestURI())); max > 0 && int64(n) > max {
			h.Set(declaredHeader, declaredSecret+" "+strconv.Itoa(n)+" "+strconv.FormatInt(max, 10))
			h.Del(fiber.HeaderExpect)
			h.SetContentLength(0)
			h.SetConnectionClose()
		}
		return rc
	}
}

// requestPath is the path of a request target in origin form (/a/b?q) or
// absolute form (http://host/a/b?q).
func requestPath(uri []byte) string {
	if i := bytes.IndexByte(uri, '?'); i >= 0 {
		uri = uri[:i]
	}
	if len(uri) > 0 && uri[0] != '/' {
		if i := bytes.Index(uri, []byte("://")); i >= 0 {
			rest := uri[i+3:]
			j := bytes.IndexByte(rest, '/')
			if j < 0 {
				return "/"
			}
			uri = rest[j:]
		}
	}
	return string(uri)
}

// RefuseDeclared answers the requests the server's hook refused by their
// declared Content-Length: 413 (or the route's own refusal) with
// Connection: close, before any other step can redirect or route them.
// Without the hook (see Install) no request is marked and it passes all.
func RefuseDeclared(limit BodyLimitFunc) fiber.Handler {
	return func(c *fiber.Ctx) error {
		if limit == nil {
			return c.Next()
		}
		v := c.Request().Header.Peek(declaredHeader)
		if len(v) == 0 {
			return c.Next()
		}
		f := bytes.Fields(v)
		if len(f) != 3 || string(f[0]) != declaredSecret {
			// Sent by the client: not a verdict.
			return c.Next()
		}
		declared, _ := strconv.ParseInt(string(f[1]), 10, 64)
		max, _ := strconv.ParseInt(string(f[2]), 10, 64)
		c.Request().Header.Del(declaredHeader)
		c.Set(fiber.HeaderConnection, "close")
		if _, refusal := limit(c.Method(), string(c.Request().URI().PathOriginal())); refusal != nil {
			return refusal
		}
		return apierr.New(apierr.CodePayloadTooLarge, "the body of %d bytes is over this route's limit of %d bytes", declared, max)
	}
}

// Draining bounds: what a closing connection reads and throws away at most.
const (
	LingerBytes = 8 << 20
	LingerTime  = 3 * time.Second
)

// Listener wraps ln so that the connections it accepts close gracefully:
// the write side is shut first (the client gets the whole answer, then
// end-of-stream), then what the client still sends is read and discarded,
// up to LingerBytes or LingerTime, and only then is the socket closed.
// A socket closed while the client's data sits unread in it answers with a
// reset, which can destroy an answer the client has not read yet: the 413
// to an upload refused before its body was read, above all, while the
// client is still sending. The edge must serve on it:
// app.Listener(httpx.Listener(ln)).
func Listener(ln net.Listener) net.Listener { return lingerListener{ln} }

type lingerListener struct{ net.Listener }

func (l lingerListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	if tc, ok := c.(*net.TCPConn); ok {
		return &lingerConn{TCPConn: tc}, nil
	}
	return c, nil
}

type lingerConn struct {
	*net.TCPConn
	once sync.Once
}

// Close shuts the write side and drains in the background, so that the
// server's worker is free at once; the drain is bounded in bytes and time.
func (c *lingerConn) Close() error {
	var err error
	c.once.Do(func() {
		if err = c.TCPConn.CloseWrite(); err != nil {
			err = c.TCPConn.Close()
			return
		}
		go func() {
			_ = c.TCPConn.SetReadDeadline(time.Now().Add(LingerTime))
			_, _ = io.CopyN(io.Discard, c.TCPConn, LingerBytes)
			_ = c.TCPConn.Close()
		}()
	})
	return err
}
