package httpx_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/httpx"
)

// uploadLimits are the test app's routes' limits, as the edge tells its
// own: uploads take 1 MiB and are refused with their own code, the rest
// 64 KiB.
func uploadLimits(method, path string) (int64, error) {
	if method == fiber.MethodPost && path == "/upload" {
		return 1 << 20, apierr.New(apierr.CodeBundleTooLarge, "the upload is over the limit of 1 MB")
	}
	return 64 << 10, nil
}

// upload is one request over a real TCP connection whose body is written
// while the answer is read, as browsers and curl do.
type upload struct {
	path     string
	declared int    // Content-Length; -1 sends the body chunked
	send     int    // body bytes actually written; then the client stalls
	expect   string // "wait": Expect: 100-continue, the body only after 100; "eager": Expect, body at once
	extra    string // more header lines
}

type answer struct {
	status    int
	interim   bool // a 100 Continue came first
	header    http.Header
	body      []byte
	writeErr  error // what writing the body met
	took      time.Duration
	closedEOF bool // the server ended the connection cleanly after its answer
	close     bool // the answer said Connection: close
}

func (u upload) run(t *testing.T, addr string, readWithin time.Duration) answer {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	start := time.Now()
	_ = conn.SetDeadline(start.Add(readWithin))
	head := "POST " + u.path + " HTTP/1.1\r\nHost: example.test\r\nContent-Type: application/zip\r\n" + u.extra
	if u.declared >= 0 {
		head += fmt.Sprintf("Content-Length: %d\r\n", u.declared)
	} else {
		head += "Transfer-Encoding: chunked\r\n"
	}
	if u.expect != "" {
		head += "Expect: 100-continue\r\n"
	}
	if _, err := conn.Write([]byte(head + "\r\n")); err != nil {
		t.Fatal(err)
	}

	var a answer
	// sendBody says once whether the body goes out at all.
	sendBody := make(chan bool, 1)
	written := make(chan error, 1)
	go func() {
		if !<-sendBody {
			written <- nil
			return
		}
		written <- writeBody(conn, u.send, u.declared < 0)
	}()
	decided := false
	decide := func(send bool) {
		if !decided {
			decided = true
			sendBody <- send
		}
	}
	if u.expect != "wait" {
		decide(true)
	}
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err == nil && resp.StatusCode == http.StatusContinue {
		a.interim = true
		decide(true)
		resp, err = http.ReadResponse(br, nil)
	}
	decide(false) // no 100 Continue: the body stays unsent
	if err != nil {
		t.Fatalf("%+v: no answer after %v: %v", u, time.Since(start), err)
	}
	a.took = time.Since(start)
	a.status, a.header, a.close = resp.StatusCode, resp.Header, resp.Close
	a.body, _ = io.ReadAll(resp.Body)
	if u.send >= u.declared || u.declared < 0 {
		// The client sent everything it meant to: the server, having
		// drained it, ends the connection with a FIN, not a reset.
		a.writeErr = <-written
		_, err = br.ReadByte()
		a.closedEOF = errors.Is(err, io.EOF)
	}
	return a
}

// writeBody writes n bytes of body, chunked or not, in pieces as a client
// streaming a file does.
func writeBody(w io.Writer, n int, chunked bool) error {
	piece := bytes.Repeat([]byte("z"), 32<<10)
	for n > 0 {
		p := piece[:min(n, len(piece))]
		var err error
		if chunked {
			_, err = fmt.Fprintf(w, "%x\r\n%s\r\n", len(p), p)
		} else {
			_, err = w.Write(p)
		}
		if err != nil {
			return err
		}
		n -= len(p)
	}
	if chunked {
		_, err := io.WriteString(w, "0\r\n\r\n")
		return err
	}
	return nil
}

// A hundred uploads over the limit, their bodies on the wire, some with
// Expect: 100-continue: each gets its 413, and none is cut off by a reset.
func TestEveryOverLimitUploadGetsItsAnswer(t *testing.T) {
	ta := newApp(t, appOptions{bodyLimit: uploadLimits})
	addr := ta.serve(t)

	var uploads []upload
	for i := range 100 {
		u := upload{path: "/upload", declared: 1<<20 + 1 + i*(40<<10)}
		switch i % 5 {
		case 0:
			u.expect = "wait"
		case 1:
			u.expect = "eager"
		case 2:
			u.path, u.declared = "/echo", 64<<10+1+i*1000 // a route with the small limit
		}
		u.send = u.declared
		uploads = append(uploads, u)
	}
	answers := make([]answer, len(uploads))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 10)
	for i, u := range uploads {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			answers[i] = u.run(t, addr, 15*time.Second)
		}()
	}
	wg.Wait()

	got413 := 0
	for i, a := range answers {
		u := uploads[i]
		if a.status != fiber.StatusRequestEntityTooLarge {
			t.Errorf("upload %d (%+v): status %d %s", i, u, a.status, a.body)
			continue
		}
		got413++
		var body apierr.Body
		if err := json.Unmarshal(a.body, &body); err != nil {
			t.Errorf("upload %d: body %s is not the contract's shape", i, a.body)
			continue
		}
		wantCode := apierr.CodeBundleTooLarge
		if u.path == "/echo" {
			wantCode = apierr.CodePayloadTooLarge
		}
		if body.Error.Code != wantCode || body.Error.RequestID == "" || body.Error.RequestID != a.header.Get(httpx.HeaderRequestID) {
			t.Errorf("upload %d: %+v, want %s with the request ID", i, body.Error, wantCode)
		}
		if a.interim {
			t.Errorf("upload %d: 100 Continue invited a body that was going to be refused", i)
		}
		if !a.close {
			t.Errorf("upload %d: no Connection: close; the unread body would be read as the next request", i)
		}
		if a.header.Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("upload %d: the 413 lacks the security headers", i)
		}
		if u.expect != "wait" && (a.writeErr != nil || !a.closedEOF) {
			t.Errorf("upload %d: writing the body met %v; clean end of stream %v", i, a.writeErr, a.closedEOF)
		}
	}
	if got413 != len(uploads) {
		t.Fatalf("%d of %d over-limit uploads got their 413", got413, len(uploads))
	}
}

// An upload whose declared length is over the limit and whose body stalls
// is answered at once, not when the server's read timeout ends it.
func TestAStalledOverLimitBodyIsAnsweredAtOnce(t *testing.T) {
	ta := newApp(t, appOptions{bodyLimit: uploadLimits})
	addr := ta.serve(t)
	for _, u := range []upload{
		{path: "/upload", declared: 50 << 20, send: 1000},
		{path: "/upload", declared: 50 << 20, send: 0},
		{path: "/upload", declared: 50 << 20, send: 100 << 10},
		{path: "/upload", declared: 50 << 20, send: 0, expect: "wait"},
		{path: "/upload", declared: 50 << 20, send: 5000, expect: "eager"},
		{path: "/small", declared: 1 << 20, send: 10},
	} {
		t.Run(fmt.Sprintf("%s %d of %d expect=%s", u.path, u.send, u.declared, u.expect), func(t *testing.T) {
			// Reading gives up well before the server's read timeout: an
			// answer that waited for it fails here.
			a := u.run(t, addr, testReadTimeout/4)
			if a.status != fiber.StatusRequestEntityTooLarge || a.interim {
				t.Fatalf("status %d (100 Continue first: %v), want 413", a.status, a.interim)
			}
			if a.took >= testReadTimeout/4 {
				t.Fatalf("answered after %v", a.took)
			}
		})
	}
}

// What stays within the limits is served as before, on a connection that
// is kept; a client cannot forge the refusal mark; and a body counted over
// the limit while streaming (chunked, no length declared) also delivers its
// 413 before the connection ends.
func TestBodiesWithinTheLimitAndUndeclaredOnes(t *testing.T) {
	ta := newApp(t, appOptions{bodyLimit: uploadLimits})
	addr := ta.serve(t)
	base := "http://" + addr
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{ExpectContinueTimeout: 5 * time.Second}}
	for _, tc := range []struct {
		name   string
		size   int
		expect bool
		header map[string]string
	}{
		{"upload at the limit", 1 << 20, false, nil},
		{"upload at the limit, with Expect", 1 << 20, true, nil},
		{"small upload with a forged refusal mark", 10, false, map[string]string{"X-Gnome-Refused-Length": "0123 99999999 1"}},
	} {
		req, _ := http.NewRequest(http.MethodPost, base+"/upload", bytes.NewReader(bytes.Repeat([]byte("a"), tc.size)))
		if tc.expect {
			req.Header.Set("Expect", "100-continue")
		}
		for k, v := range tc.header {
			req.Header.Set(k, v)
		}
		resp, err := client.Do(req)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != fmt.Sprintf(`{"bytes":%d}`, tc.size) || resp.Close {
			t.Errorf("%s: %d %s (closed %v), want 200 with the size on a kept connection", tc.name, resp.StatusCode, b, resp.Close)
		}
	}

	a := upload{path: "/upload", declared: -1, send: 3 << 20}.run(t, addr, 10*time.Second)
	if a.status != fiber.StatusRequestEntityTooLarge || !strings.Contains(string(a.body), `"bundle_too_large"`) {
		t.Errorf("chunked over the limit: %d %s", a.status, a.body)
	}
	if a.writeErr != nil || !a.closedEOF {
		t.Errorf("chunked over the limit: writing met %v; clean end of stream %v", a.writeErr, a.closedEOF)
	}
}
