package httpx_test

import (
	"bytes"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"github.com/gnome-platform/gnome/libs/httpx"
)

func decode(t *testing.T, enc string, body []byte) []byte {
	t.Helper()
	var out []byte
	var err error
	switch enc {
	case "br":
		out, err = fasthttp.AppendUnbrotliBytes(nil, body)
	case "gzip":
		out, err = fasthttp.AppendGunzipBytes(nil, body)
	default:
		return body
	}
	if err != nil {
		t.Fatalf("decode %s: %v", enc, err)
	}
	return out
}

func TestCompressFollowsAcceptEncoding(t *testing.T) {
	ta := newApp(t, appOptions{})
	for _, tc := range []struct{ accept, want string }{
		{"", ""},
		{"gzip", "gzip"},
		{"br", "br"},
		{"gzip, deflate, br", "br"},
		{"br;q=0.4, gzip;q=0.6", "gzip"},
		{"br;q=0, gzip", "gzip"},
		{"br;q=0, gzip;q=0", ""},
		{"*;q=0", ""},
		{"identity", ""},
	} {
		t.Run(tc.accept, func(t *testing.T) {
			var hdr [][2]string
			if tc.accept != "" {
				hdr = [][2]string{{"Accept-Encoding", tc.accept}}
			}
			resp := ta.do(t, request{target: "/big", headers: hdr})
			if got := header(resp, fiber.HeaderContentEncoding); got != tc.want {
				t.Fatalf("Content-Encoding %q, want %q", got, tc.want)
			}
			if !bytes.Equal(decode(t, tc.want, resp.Body()), []byte(bigJSON)) {
				t.Error("the decoded body differs from the handler's")
			}
			if header(resp, fiber.HeaderVary) != fiber.HeaderAcceptEncoding {
				t.Errorf("Vary %q, want Accept-Encoding", header(resp, fiber.HeaderVary))
			}
			if header(resp, httpx.HeaderRequestID) == "" {
				t.Error("no X-Request-ID")
			}
			wantETag := `"v1"`
			if tc.want != "" {
				wantETag = `W/"v1"`
				if len(resp.Body()) >= len(bigJSON) {
					t.Errorf("%d bytes encoded from %d", len(resp.Body()), len(bigJSON))
				}
			}
			if got := header(resp, fiber.HeaderETag); got != wantETag {
				t.Errorf("ETag %q, want %q", got, wantETag)
			}
		})
	}
}

func TestCompressLeavesSomeBodiesAlone(t *testing.T) {
	ta := newApp(t, appOptions{})
	for _, tc := range []struct {
		name string
		r    request
	}{
		{"small JSON", request{target: "/small"}},
		{"image", request{target: "/png"}},
		{"HEAD", request{method: "HEAD", target: "/big"}},
		{"error body", request{target: "/nowhere"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.r.headers = append(tc.r.headers, [2]string{"Accept-Encoding", "br, gzip"})
			resp := ta.do(t, tc.r)
			if got := header(resp, fiber.HeaderContentEncoding); got != "" {
				t.Errorf("Content-Encoding %q, want none", got)
			}
		})
	}
	if n := len(ta.do(t, request{target: "/png", headers: [][2]string{{"Accept-Encoding", "gzip"}}}).Body()); n != 2400 {
		t.Errorf("image body %d bytes, want 2400 untouched", n)
	}
}

func TestCompressKeepsAnExistingEncoding(t *testing.T) {
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	app.Use(httpx.Compress())
	pre := fasthttp.AppendGzipBytes(nil, []byte(bigJSON))
	app.Get("/", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		c.Set(fiber.HeaderContentEncoding, "gzip")
		return c.Send(pre)
	})
	ta := &testApp{app: app}
	resp := ta.do(t, request{target: "/", headers: [][2]string{{"Accept-Encoding", "br"}}})
	if header(resp, fiber.HeaderContentEncoding) != "gzip" || !bytes.Equal(resp.Body(), pre) {
		t.Errorf("an already gzipped body was re-encoded as %q", header(resp, fiber.HeaderContentEncoding))
	}
}
