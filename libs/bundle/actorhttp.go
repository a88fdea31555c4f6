package bundle

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"

	"github.com/gnome-platform/gnome/libs/apierr"
)

// ActorHTTP is actor.http: the hosts the actor may send HTTP requests to
// (the http.fetch host operation) and the bounds of those requests. Zero
// bounds were not given: the platform's defaults apply (HTTPDefaults).
type ActorHTTP struct {
	// Allow lists exact host names ("api.example.com") and wildcards
	// ("*.example.com", which matches every subdomain of example.com at any
	// depth but not example.com itself). Names only: no IP addresses,
	// ports, schemes or paths.
	Allow             []string `json:"allow"`
	TimeoutMS         int      `json:"timeout_ms,omitempty"`
	MaxRequestBytes   int      `json:"max_request_bytes,omitempty"`
	MaxResponseBytes  int      `json:"max_response_bytes,omitempty"`
	MaxConcurrent     int      `json:"max_concurrent,omitempty"`
	RequestsPerMinute int      `json:"requests_per_minute,omitempty"`
}

// HTTPLimits are the bounds of an actor's outbound HTTP requests.
type HTTPLimits struct {
	TimeoutMS         int
	MaxRequestBytes   int
	MaxResponseBytes  int
	MaxConcurrent     int
	RequestsPerMinute int
}

// The platform's defaults and maximums of actor.http; the manifest schema
// repeats the maximums. The body maximums keep a request and its result,
// base64 in their JSON envelopes, under the host call's bounds (1 MiB in,
// 4 MiB out).
var (
	HTTPDefaults = HTTPLimits{TimeoutMS: 10_000, MaxRequestBytes: 512 << 10, MaxResponseBytes: 1 << 20, MaxConcurrent: 4, RequestsPerMinute: 60}
	HTTPMaximums = HTTPLimits{TimeoutMS: 30_000, MaxRequestBytes: 512 << 10, MaxResponseBytes: 2 << 20, MaxConcurrent: 16, RequestsPerMinute: 600}
)

// MaxHTTPAllow bounds the entries of actor.http.allow.
const MaxHTTPAllow = 64

// Limits are h's bounds: the defaults where not given, capped at the
// maximums (the schema refuses larger values; this holds for manifests
// stored before a maximum was lowered).
func (h *ActorHTTP) Limits() HTTPLimits {
	pick := func(given, def, limit int) int {
		if given <= 0 {
			given = def
		}
		return min(given, limit)
	}
	d, m := HTTPDefaults, HTTPMaximums
	if h == nil {
		return d
	}
	return HTTPLimits{
		TimeoutMS:         pick(h.TimeoutMS, d.TimeoutMS, m.TimeoutMS),
		MaxRequestBytes:   pick(h.MaxRequestBytes, d.MaxRequestBytes, m.MaxRequestBytes),
		MaxResponseBytes:  pick(h.MaxResponseBytes, d.MaxResponseBytes, m.MaxResponseBytes),
		MaxConcurrent:     pick(h.MaxConcurrent, d.MaxConcurrent, m.MaxConcurrent),
		RequestsPerMinute: pick(h.RequestsPerMinute, d.RequestsPerMinute, m.RequestsPerMinute),
	}
}

// Allows reports whether host (a URL's host name, without port) is one h
// allows. Case and one trailing dot do not matter; a name that is not a
// valid host name, or an IP address, is never allowed.
func (h *ActorHTTP) Allows(host string) bool {
	if h == nil {
		return false
	}
	host = strings.ToLower(strings.TrimSuffix(host, "."))
	if hostNameProblem(host) != "" {
		return false
	}
	for _, p := range h.Allow {
		p = strings.ToLower(p)
		if suffix, ok := strings.CutPrefix(p, "*"); ok {
			// "*.example.com": a subdomain, never the apex itself.
			if len(host) > len(suffix) && strings.HasSuffix(host, suffix) {
				return true
			}
			continue
		}
		if host == p {
			return true
		}
	}
	return false
}

// UnmarshalJSON takes integral numbers in any JSON spelling (32.0), as the
// schema's integer type does.
func (h *ActorHTTP) UnmarshalJSON(data []byte) error {
	var v struct {
		Allow             []string        `json:"allow"`
		TimeoutMS         json.RawMessage `json:"timeout_ms"`
		MaxRequestBytes   json.RawMessage `json:"max_request_bytes"`
		MaxResponseBytes  json.RawMessage `json:"max_response_bytes"`
		MaxConcurrent     json.RawMessage `json:"max_concurrent"`
		RequestsPerMinute json.RawMessage `json:"requests_per_minute"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	*h = ActorHTTP{Allow: v.Allow}
	for _, f := range []struct {
		raw json.RawMessage
		to  *int
	}{{v.TimeoutMS, &h.TimeoutMS}, {v.MaxRequestBytes, &h.MaxRequestBytes}, {v.MaxResponseBytes, &h.MaxResponseBytes},
		{v.MaxConcurrent, &h.MaxConcurrent}, {v.RequestsPerMinute, &h.RequestsPerMinute}} {
		if len(f.raw) == 0 || string(f.raw) == "null" {
			continue
		}
		n, err := integer(f.raw)
		if err != nil {
			return err
		}
		*f.to = n
	}
	return nil
}

// checkActorHTTP refuses, before the schema does, the entries of
// actor.http.allow whose pattern error would not say why.
func checkActorHTTP(doc any) error {
	obj, _ := doc.(map[string]any)
	actor, _ := obj["actor"].(map[string]any)
	h, _ := actor["http"].(map[string]any)
	allow, _ := h["allow"].([]any)
	seen := map[string]int{}
	for i, e := range allow {
		s, ok := e.(string)
		if !ok {
			continue // the schema names the wrong type
		}
		field := fmt.Sprintf("/actor/http/allow/%d", i)
		if why := HostPatternProblem(s); why != "" {
			return apierr.New(apierr.CodeManifestInvalid, "manifest.json is invalid: %s: %q: %s", field, s, why).OnField(field)
		}
		key := strings.ToLower(s)
		if j, dup := seen[key]; dup {
			return apierr.New(apierr.CodeManifestInvalid, "manifest.json is invalid: %s: %q is already entry %d", field, s, j).OnField(field)
		}
		seen[key] = i
	}
	return nil
}

// HostPatternProblem says what is wrong with an entry of actor.http.allow,
// or "" when it is a valid host name or "*." wildcard.
func HostPatternProblem(p string) string {
	switch {
	case p == "":
		return "is empty"
	case p == "*" || p == "*.":
		return `"*" alone would allow every host: list the hosts, or "*.example.com" for the subdomains of example.com`
	case strings.Contains(p, "://") || strings.ContainsAny(p, "/?#@"):
		return "name a host only, without scheme, path or user (https://api.example.com/v1 is api.example.com)"
	}
	if a, err := netip.ParseAddr(strings.Trim(p, "[]")); err == nil {
		return fmt.Sprintf("IP addresses are not accepted (%s): name the host; the addresses it resolves to are checked when the actor connects", a)
	}
	if i := strings.LastIndexByte(p, ':'); i >= 0 {
		return "ports are not part of an allowed host (any port of an allowed host may be used): write " + strings.TrimSpace(p[:i])
	}
	name, wild := strings.CutPrefix(p, "*.")
	if strings.Contains(name, "*") {
		return `a wildcard is accepted only as the whole first label, as in "*.example.com"`
	}
	if wild && name != "" && !strings.Contains(name, ".") {
		return `a wildcard needs a domain of two labels or more after it ("*.example.com", not "*.com")`
	}
	if why := hostNameProblem(strings.ToLower(name)); why != "" {
		return why
	}
	return ""
}

// hostNameProblem says what keeps name (lower case) from being a host name
// of two labels or more that is not an IP address, or "".
func hostNameProblem(name string) string {
	switch {
	case name == "":
		return "is empty"
	case len(name) > 253:
		return "is longer than a host name may be (253 characters)"
	case strings.HasSuffix(name, "."):
		return "drop the trailing dot"
	case !strings.Contains(name, "."):
		return "name a host with its domain (single-label names such as localhost resolve inside the platform's network)"
	}
	labels := strings.Split(name, ".")
	for _, l := range labels {
		if l == "" {
			return "has an empty label (two dots in a row or a leading dot)"
		}
		if len(l) > 63 {
			return fmt.Sprintf("the label %q is longer than 63 characters", l)
		}
		if l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Sprintf("the label %q starts or ends with a hyphen", l)
		}
		for _, c := range []byte(l) {
			if c >= 0x80 {
				return "write international names in their ASCII form (xn--...)"
			}
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
				return fmt.Sprintf("the label %q has a character other than letters, digits and hyphens", l)
			}
		}
	}
	if tld := labels[len(labels)-1]; tld[0] < 'a' || tld[0] > 'z' {
		// A numeric last label is an IPv4 address in another spelling
		// (0x7f.1, 2130706433.x ...), which resolvers may accept.
		return "the last label must start with a letter (IP addresses in any spelling are not accepted)"
	}
	return ""
}
