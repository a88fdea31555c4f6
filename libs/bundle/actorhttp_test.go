package bundle_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bundle"
)

func manifestWithHTTP(http string) []byte {
	return []byte(`{"slug": "fetcher", "name": "F", "actor": {"module": "actor.wasm", "http": ` + http + `}}`)
}

// TestActorHTTPRefusals: every bad actor.http is refused at upload, naming
// its field and, for host patterns, why.
func TestActorHTTPRefusals(t *testing.T) {
	for _, tc := range []struct {
		name, http, field, says string
	}{
		{"star alone", `{"allow": ["*"]}`, "/actor/http/allow/0", "every host"},
		{"star dot", `{"allow": ["*."]}`, "/actor/http/allow/0", "every host"},
		{"empty entry", `{"allow": [""]}`, "/actor/http/allow/0", "empty"},
		{"scheme", `{"allow": ["https://api.example.com"]}`, "/actor/http/allow/0", "without scheme"},
		{"path", `{"allow": ["api.example.com/v1"]}`, "/actor/http/allow/0", "without scheme"},
		{"user info", `{"allow": ["user@api.example.com"]}`, "/actor/http/allow/0", "without scheme"},
		{"IPv4 literal", `{"allow": ["169.254.169.254"]}`, "/actor/http/allow/0", "IP addresses"},
		{"public IPv4 literal", `{"allow": ["8.8.8.8"]}`, "/actor/http/allow/0", "IP addresses"},
		{"IPv6 literal", `{"allow": ["::1"]}`, "/actor/http/allow/0", "IP addresses"},
		{"bracketed IPv6", `{"allow": ["[fd00:ec2::254]"]}`, "/actor/http/allow/0", "IP addresses"},
		{"IPv4 in hex", `{"allow": ["0x7f.1"]}`, "/actor/http/allow/0", "last label"},
		{"numeric last label", `{"allow": ["a.127"]}`, "/actor/http/allow/0", "last label"},
		{"port", `{"allow": ["api.example.com:8443"]}`, "/actor/http/allow/0", "ports"},
		{"wildcard inside", `{"allow": ["api.*.example.com"]}`, "/actor/http/allow/0", "first label"},
		{"partial wildcard", `{"allow": ["*api.example.com"]}`, "/actor/http/allow/0", "first label"},
		{"double wildcard", `{"allow": ["*.*.example.com"]}`, "/actor/http/allow/0", "first label"},
		{"wildcard over a top-level domain", `{"allow": ["*.com"]}`, "/actor/http/allow/0", "two labels"},
		{"single label", `{"allow": ["localhost"]}`, "/actor/http/allow/0", "single-label"},
		{"single label metadata", `{"allow": ["metadata"]}`, "/actor/http/allow/0", "single-label"},
		{"trailing dot", `{"allow": ["api.example.com."]}`, "/actor/http/allow/0", "trailing dot"},
		{"empty label", `{"allow": ["api..example.com"]}`, "/actor/http/allow/0", "empty label"},
		{"leading hyphen", `{"allow": ["-api.example.com"]}`, "/actor/http/allow/0", "hyphen"},
		{"underscore", `{"allow": ["api_v1.example.com"]}`, "/actor/http/allow/0", "letters, digits and hyphens"},
		{"space", `{"allow": ["api .example.com"]}`, "/actor/http/allow/0", "letters, digits and hyphens"},
		{"unicode", `{"allow": ["bücher.example"]}`, "/actor/http/allow/0", "xn--"},
		{"label too long", `{"allow": ["` + strings.Repeat("a", 64) + `.example.com"]}`, "/actor/http/allow/0", "63"},
		{"name too long", `{"allow": ["` + strings.Repeat("abcdefghi.", 26) + `com"]}`, "/actor/http/allow/0", "253"},
		{"duplicate in another case", `{"allow": ["api.example.com", "API.example.com"]}`, "/actor/http/allow/1", "already"},
		{"second entry bad", `{"allow": ["api.example.com", "*"]}`, "/actor/http/allow/1", "every host"},
		{"allow missing", `{"timeout_ms": 100}`, "/actor/http/allow", "required"},
		{"allow empty", `{"allow": []}`, "/actor/http/allow", ""},
		{"allow not a list", `{"allow": "api.example.com"}`, "/actor/http/allow", ""},
		{"allow entry not a string", `{"allow": [3]}`, "/actor/http/allow/0", ""},
		{"too many entries", `{"allow": [` + hosts(65) + `]}`, "/actor/http/allow", ""},
		{"unknown field", `{"allow": ["a.example.com"], "timeout": 3}`, "/actor/http/timeout", "not an accepted name"},
		{"timeout over the maximum", `{"allow": ["a.example.com"], "timeout_ms": 30001}`, "/actor/http/timeout_ms", ""},
		{"timeout zero", `{"allow": ["a.example.com"], "timeout_ms": 0}`, "/actor/http/timeout_ms", ""},
		{"response bytes over the maximum", `{"allow": ["a.example.com"], "max_response_bytes": 2097153}`, "/actor/http/max_response_bytes", ""},
		{"request bytes over the maximum", `{"allow": ["a.example.com"], "max_request_bytes": 524289}`, "/actor/http/max_request_bytes", ""},
		{"concurrency over the maximum", `{"allow": ["a.example.com"], "max_concurrent": 17}`, "/actor/http/max_concurrent", ""},
		{"rate over the maximum", `{"allow": ["a.example.com"], "requests_per_minute": 601}`, "/actor/http/requests_per_minute", ""},
		{"rate not an integer", `{"allow": ["a.example.com"], "requests_per_minute": 1.5}`, "/actor/http/requests_per_minute", ""},
		{"http not an object", `["a.example.com"]`, "/actor/http", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := bundle.ParseManifest(manifestWithHTTP(tc.http))
			ae := wantCode(t, err, apierr.CodeManifestInvalid, tc.says)
			if ae.Field != tc.field {
				t.Errorf("field %q, want %q (message %q)", ae.Field, tc.field, ae.Message)
			}
			if !strings.Contains(ae.Message, tc.field) {
				t.Errorf("message %q does not name %s", ae.Message, tc.field)
			}
		})
	}
}

func hosts(n int) string {
	var b []string
	for i := range n {
		b = append(b, fmt.Sprintf(`"h%d.example.com"`, i))
	}
	return strings.Join(b, ",")
}

// TestActorHTTPAccepted: valid patterns are read, numbers in any integral
// spelling, defaults fill what is not given, and matching follows the
// documented rules (wildcards match subdomains at any depth, never the
// apex; case and one trailing dot do not matter; addresses never match).
func TestActorHTTPAccepted(t *testing.T) {
	m, _, err := bundle.ParseManifest(manifestWithHTTP(`{"allow": ["api.example.com", "*.Data.Example.org", "xn--bcher-kva.example"],
		"timeout_ms": 2500.0, "max_response_bytes": 2097152, "requests_per_minute": 5}`))
	if err != nil {
		t.Fatal(err)
	}
	h := m.Actor.HTTP
	if h == nil || len(h.Allow) != 3 {
		t.Fatalf("actor.http = %+v", h)
	}
	lim := h.Limits()
	want := bundle.HTTPLimits{TimeoutMS: 2500, MaxRequestBytes: bundle.HTTPDefaults.MaxRequestBytes, MaxResponseBytes: 2 << 20,
		MaxConcurrent: bundle.HTTPDefaults.MaxConcurrent, RequestsPerMinute: 5}
	if lim != want {
		t.Errorf("limits %+v, want %+v", lim, want)
	}
	for host, allowed := range map[string]bool{
		"api.example.com":             true,
		"API.EXAMPLE.COM":             true,
		"api.example.com.":            true,
		"example.com":                 false,
		"evil-api.example.com":        false,
		"api.example.com.evil.net":    false,
		"eu.data.example.org":         true,
		"a.b.data.example.org":        true,
		"data.example.org":            false, // the apex of a wildcard
		"xdata.example.org":           false,
		"xn--bcher-kva.example":       true,
		"127.0.0.1":                   false,
		"":                            false,
		"api.example.com:443":         false,
		"api.example.com..":           false,
		"eu..data.example.org":        false,
		"eu.data.example.org/x":       false,
		"sub.xn--bcher-kva.example":   false,
		"169.254.169.254.example.com": false,
	} {
		if got := h.Allows(host); got != allowed {
			t.Errorf("Allows(%q) = %v, want %v", host, got, allowed)
		}
	}
	var none *bundle.ActorHTTP
	if none.Allows("api.example.com") || none.Limits() != bundle.HTTPDefaults {
		t.Error("a manifest without actor.http must allow no host and have the default limits")
	}
}
