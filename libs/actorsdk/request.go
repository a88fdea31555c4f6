package actorsdk

import (
	"encoding/json"
	"errors"
	"net/url"
	"strings"
)

// Request is one HTTP request for /experiments/{slug}/api/*.
type Request struct {
	// Method is the HTTP method, upper case.
	Method string
	// Path is the path below /experiments/{slug}/api, percent-decoded,
	// starting with "/".
	Path string
	// RawQuery is the query string without '?', still percent-encoded.
	RawQuery string
	// Query is RawQuery parsed.
	Query url.Values
	// Header holds the request headers (without Authorization: Caller says
	// who asks). Its Cookie header holds the visitor's cookies except the
	// platform's own; read them with Cookie.
	Header Header
	// Body is the request body.
	Body []byte
	// Caller is who asks, as the platform verified it.
	Caller Caller
	// RequestID is the platform's ID of the request, also in its logs.
	RequestID string

	params map[string]string
}

// Caller is who sent a request.
type Caller struct {
	// Kind is which kind of caller this is: KindUser, KindExperimentUser,
	// KindDemo, KindParticipant or KindAnonymous.
	Kind string `json:"kind"`
	// ID identifies the caller within the experiment and stays the same
	// across visits: the account's ID, or the anonymous participant's;
	// "" for KindAnonymous.
	ID string `json:"id"`
	// Email is the signed-in account's email; "" when Anonymous.
	Email string `json:"email"`
	// Roles are the caller's roles (for KindUser its platform roles:
	// admin, developer, user).
	Roles []string `json:"roles"`
	// Anonymous is true when the caller has no account (KindParticipant,
	// KindAnonymous).
	Anonymous bool `json:"anonymous"`
	// Link is, for a participant who came through a study link, the link
	// and their run; nil otherwise.
	Link *Link `json:"link,omitempty"`
}

// Link is the study link a participant opened (Caller.Link).
type Link struct {
	// ID is the link's; Kind is LinkSingle, LinkMulti or LinkPersonal;
	// Label is a personal link's participant label.
	ID    string `json:"id"`
	Kind  string `json:"kind"`
	Label string `json:"label"`
	// Run is the participant's run, which FinishRun marks finished.
	Run string `json:"run"`
	// Params are the URL parameters the recruiter added to the link:
	// PROLIFIC_PID, STUDY_ID and SESSION_ID from Prolific, workerId,
	// assignmentId and hitId from Mechanical Turk, and any others.
	Params map[string]string `json:"params"`
}

// Kinds of study links (Link.Kind).
const (
	LinkSingle   = "single"
	LinkMulti    = "multi"
	LinkPersonal = "personal"
)

// Kinds of callers (Caller.Kind).
const (
	// KindUser is a platform user.
	KindUser = "user"
	// KindExperimentUser is an account of this experiment alone (sub_auth).
	KindExperimentUser = "experiment_user"
	// KindDemo is a demo account of this experiment.
	KindDemo = "demo"
	// KindParticipant is an anonymous participant with a stable ID
	// (sub_auth anonymous_session, study links).
	KindParticipant = "participant"
	// KindAnonymous is a visitor the platform knows nothing of.
	KindAnonymous = "anonymous"
)

// HasRole reports whether the caller has role.
func (c Caller) HasRole(role string) bool {
	for _, r := range c.Roles {
		if r == role {
			return true
		}
	}
	return false
}

// Cookie is the value of the request's cookie name, and whether it was
// sent. The platform's own cookies (gnome_*, __Host-gnome*,
// __Secure-gnome*, and the session cookie sub_auth names) never reach an
// actor.
func (r *Request) Cookie(name string) (string, bool) {
	for _, line := range r.Header.Values("Cookie") {
		for part := range strings.SplitSeq(line, ";") {
			k, v, ok := strings.Cut(strings.TrimSpace(part), "=")
			if ok && k == name {
				if len(v) > 1 && v[0] == '"' && v[len(v)-1] == '"' {
					v = v[1 : len(v)-1]
				}
				return v, true
			}
		}
	}
	return "", false
}

// PathValue is the path segment the route's {name} wildcard matched, or "".
func (r *Request) PathValue(name string) string { return r.params[name] }

// DecodeJSON decodes the body, which must be one JSON value, into v.
func (r *Request) DecodeJSON(v any) error {
	if len(r.Body) == 0 {
		return errors.New("the request has no body")
	}
	return json.Unmarshal(r.Body, v)
}

// parseQuery parses the raw query string; a stray '%' in one parameter
// does not hide the others.
func parseQuery(raw string) url.Values {
	if raw == "" {
		return url.Values{}
	}
	q, err := url.ParseQuery(raw)
	if err != nil {
		q = partialQuery(raw)
	}
	return q
}

func partialQuery(raw string) url.Values {
	q := url.Values{}
	for part := range strings.SplitSeq(raw, "&") {
		k, v, _ := strings.Cut(part, "=")
		k, err1 := url.QueryUnescape(k)
		v, err2 := url.QueryUnescape(v)
		if err1 == nil && err2 == nil && k != "" {
			q.Add(k, v)
		}
	}
	return q
}

// Header is a set of HTTP headers; names are kept in canonical form
// (Content-Type).
type Header map[string][]string

// Get is the first value of name, or "".
func (h Header) Get(name string) string {
	if vs := h[CanonicalHeaderKey(name)]; len(vs) > 0 {
		return vs[0]
	}
	return ""
}

// Values are every value of name.
func (h Header) Values(name string) []string { return h[CanonicalHeaderKey(name)] }

// Set replaces name's values by value.
func (h Header) Set(name, value string) { h[CanonicalHeaderKey(name)] = []string{value} }

// Add appends value to name's values.
func (h Header) Add(name, value string) {
	k := CanonicalHeaderKey(name)
	h[k] = append(h[k], value)
}

// Del removes name.
func (h Header) Del(name string) { delete(h, CanonicalHeaderKey(name)) }

// CanonicalHeaderKey is name with the first letter and every letter after a
// hyphen in upper case and the others in lower case (content-type gives
// Content-Type); a name with a character that is not a token character is
// returned as it is, as net/http does.
func CanonicalHeaderKey(name string) string {
	canonical := true
	upper := true
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !isTokenChar(c) {
			return name
		}
		if upper && 'a' <= c && c <= 'z' || !upper && 'A' <= c && c <= 'Z' {
			canonical = false
		}
		upper = c == '-'
	}
	if canonical {
		// Names come canonical from the host: no copy for them.
		return name
	}
	b := []byte(name)
	upper = true
	for i, c := range b {
		switch {
		case upper && 'a' <= c && c <= 'z':
			b[i] = c - 'a' + 'A'
		case !upper && 'A' <= c && c <= 'Z':
			b[i] = c - 'A' + 'a'
		}
		upper = c == '-'
	}
	return string(b)
}

func isTokenChar(c byte) bool {
	switch {
	case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
		return true
	}
	return strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0
}
