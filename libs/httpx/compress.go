package httpx

import (
	"strconv"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"
)

// CompressMinBytes is the smallest body worth compressing.
const CompressMinBytes = 1024

// Compress encodes response bodies of at least CompressMinBytes with brotli
// or gzip, as the client's Accept-Encoding prefers (brotli on a tie). Bodies
// already encoded, streamed, or of types that do not shrink are left alone.
func Compress() fiber.Handler {
	return func(c *fiber.Ctx) error {
		if err := c.Next(); err != nil {
			return err
		}
		resp := c.Response()
		if c.Method() == fiber.MethodHead || resp.IsBodyStream() || len(resp.Header.Peek(fiber.HeaderContentEncoding)) > 0 {
			return nil
		}
		body := resp.Body()
		if len(body) < CompressMinBytes || !compressible(string(resp.Header.ContentType())) {
			return nil
		}
		if !strings.Contains(string(resp.Header.Peek(fiber.HeaderVary)), fiber.HeaderAcceptEncoding) {
			resp.Header.Add(fiber.HeaderVary, fiber.HeaderAcceptEncoding)
		}
		var out []byte
		switch pickEncoding(c.Get(fiber.HeaderAcceptEncoding)) {
		case "br":
			out = fasthttp.AppendBrotliBytesLevel(nil, body, fasthttp.CompressBrotliDefaultCompression)
			resp.Header.Set(fiber.HeaderContentEncoding, "br")
		case "gzip":
			out = fasthttp.AppendGzipBytesLevel(nil, body, fasthttp.CompressDefaultCompression)
			resp.Header.Set(fiber.HeaderContentEncoding, "gzip")
		default:
			return nil
		}
		// A strong validator names one representation: mark the encoded one.
		if et := string(resp.Header.Peek(fiber.HeaderETag)); strings.HasPrefix(et, `"`) {
			resp.Header.Set(fiber.HeaderETag, "W/"+et)
		}
		resp.SetBodyRaw(out)
		return nil
	}
}

func compressible(ct string) bool {
	ct = strings.ToLower(ct)
	for _, p := range []string{"text/", "application/json", "application/javascript", "application/xml", "image/svg+xml", "application/wasm", "application/manifest+json", "application/problem+json"} {
		if strings.HasPrefix(ct, p) {
			return true
		}
	}
	return false
}

// pickEncoding chooses br or gzip from an Accept-Encoding header, honouring
// q-values (q=0 refuses); "" when neither is acceptable.
func pickEncoding(accept string) string { return Negotiate(accept, "br", "gzip") }

// Negotiate picks, of the encodings offered (in order of preference on a
// tie), the one the Accept-Encoding header values most; "" when none is
// acceptable (q=0 refuses, and an unlisted one counts only through "*").
func Negotiate(accept string, offers ...string) string {
	best, bestQ := "", 0.0
	star := -1.0
	seen := map[string]float64{}
	for _, part := range strings.Split(accept, ",") {
		name, q := parseQ(part)
		if name == "*" {
			star = q
			continue
		}
		seen[name] = q
	}
	for _, enc := range offers {
		q, ok := seen[enc]
		if !ok {
			if star < 0 {
				continue
			}
			q = star
		}
		if q > bestQ {
			best, bestQ = enc, q
		}
	}
	return best
}

func parseQ(part string) (string, float64) {
	fields := strings.Split(part, ";")
	name := strings.ToLower(strings.TrimSpace(fields[0]))
	q := 1.0
	for _, f := range fields[1:] {
		f = strings.ToLower(strings.TrimSpace(f))
		if strings.HasPrefix(f, "q=") {
			v, err := strconv.ParseFloat(f[2:], 64)
			if err != nil || v < 0 {
				v = 0
			}
			q = min(v, 1)
		}
	}
	return name, q
}
