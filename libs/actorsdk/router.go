package actorsdk

import (
	"fmt"
	"sort"
	"strings"
)

// HandlerFunc answers one request. A nil response is 204 No Content.
type HandlerFunc func(req *Request) *Response

type route struct {
	*Pattern
	method string // "" for any
	order  int
	h      HandlerFunc
}

// Pattern is a route pattern as Route takes it, parsed: what a router of
// its own (the platform's JavaScript runtime has one) uses to match paths
// exactly as Route does.
type Pattern struct {
	segments []segment
	rest     string // name of the trailing {name...}, or ""
	hasRest  bool
	literals int
}

type segment struct {
	literal string
	param   string // non-empty for {name}
}

var (
	routes   []*route
	fallback HandlerFunc
)

// Route registers h for method ("" or "*" for any) and pattern, a path such
// as "/counts", "/items/{id}" or "/files/{path...}": {name} matches one
// non-empty segment, {name...} (last only) the rest of the path; read them
// with Request.PathValue. When several routes match, the one with the most
// literal segments wins, then the one registered first. Call it from init;
// an invalid pattern panics.
func Route(method, pattern string, h HandlerFunc) {
	if h == nil {
		panic("actorsdk: Route with a nil handler")
	}
	p, err := ParsePattern(pattern)
	if err != nil {
		panic(fmt.Sprintf("actorsdk: route %q: %v", pattern, err))
	}
	r := &route{Pattern: p}
	r.method = strings.ToUpper(method)
	if r.method == "*" {
		r.method = ""
	}
	r.h = h
	r.order = len(routes)
	routes = append(routes, r)
	sort.SliceStable(routes, func(i, j int) bool {
		if routes[i].literals != routes[j].literals {
			return routes[i].literals > routes[j].literals
		}
		return routes[i].order < routes[j].order
	})
}

// Handle registers h for every request no route matches; without routes it
// answers every request.
func Handle(h HandlerFunc) { fallback = h }

// ParsePattern parses a pattern such as "/items/{id}" or "/files/{path...}"
// (see Route), or says what is wrong with it.
func ParsePattern(p string) (*Pattern, error) {
	if !strings.HasPrefix(p, "/") {
		return nil, fmt.Errorf("does not start with /")
	}
	r := &Pattern{}
	parts := strings.Split(p[1:], "/")
	seen := map[string]bool{}
	for i, part := range parts {
		if strings.HasPrefix(part, "{") && strings.HasSuffix(part, "}") {
			name := part[1 : len(part)-1]
			if rest, ok := strings.CutSuffix(name, "..."); ok {
				if i != len(parts)-1 {
					return nil, fmt.Errorf("{%s} is not the last segment", name)
				}
				name = rest
				r.hasRest = true
				r.rest = name
			}
			if name == "" || seen[name] {
				return nil, fmt.Errorf("wildcard %q is empty or repeated", part)
			}
			seen[name] = true
			if !r.hasRest {
				r.segments = append(r.segments, segment{param: name})
			}
			continue
		}
		if strings.ContainsAny(part, "{}") {
			return nil, fmt.Errorf("segment %q mixes text and a wildcard", part)
		}
		r.segments = append(r.segments, segment{literal: part})
		r.literals++
	}
	return r, nil
}

// Literals is the number of literal segments: among patterns that match a
// path, Route prefers the one with the most.
func (r *Pattern) Literals() int { return r.literals }

// Params are the names of the pattern's wildcards, in the pattern's order.
func (r *Pattern) Params() []string {
	var out []string
	for _, s := range r.segments {
		if s.param != "" {
			out = append(out, s.param)
		}
	}
	if r.hasRest {
		out = append(out, r.rest)
	}
	return out
}

// Match reports whether path matches r, with its wildcards' values. It
// walks the path in place: a pattern that does not match costs no
// allocation.
func (r *Pattern) Match(path string) (map[string]string, bool) {
	rest := strings.TrimPrefix(path, "/")
	var params map[string]string
	for i, s := range r.segments {
		part, next, found := strings.Cut(rest, "/")
		if !found && i < len(r.segments)-1 {
			return nil, false
		}
		switch {
		case s.param != "":
			if part == "" {
				return nil, false
			}
			if params == nil {
				params = make(map[string]string, len(r.segments)+1)
			}
			params[s.param] = part
		case s.literal != part:
			return nil, false
		}
		if i == len(r.segments)-1 {
			// Only a trailing {name...} takes more segments; it takes ""
			// when the path ends here.
			if found && !r.hasRest {
				return nil, false
			}
			if !found {
				next = ""
			}
		}
		rest = next
	}
	if r.hasRest {
		if params == nil {
			params = map[string]string{}
		}
		params[r.rest] = rest
	}
	return params, true
}

// Serve answers req through the registered routes, as the platform's
// requests are answered. Tests of an actor's handlers can call it natively.
func Serve(req *Request) *Response {
	if req.Query == nil {
		req.Query = map[string][]string{}
	}
	if req.Header == nil {
		req.Header = Header{}
	}
	if req.Path == "" {
		req.Path = "/"
	}
	req.Method = strings.ToUpper(req.Method)
	var allowed []string
	for _, r := range routes {
		params, ok := r.Match(req.Path)
		if !ok {
			continue
		}
		if r.method != "" && r.method != req.Method {
			allowed = append(allowed, r.method)
			continue
		}
		req.params = params
		return orNoContent(r.h(req))
	}
	if fallback != nil {
		return orNoContent(fallback(req))
	}
	if len(allowed) > 0 {
		sort.Strings(allowed)
		return Error(405, CodeMethodNotAllowed, "this route does not take "+req.Method).
			WithHeader("Allow", strings.Join(dedupe(allowed), ", "))
	}
	return Error(404, CodeNotFound, "no route for "+req.Method+" "+req.Path)
}

func orNoContent(r *Response) *Response {
	if r == nil {
		return &Response{Status: 204}
	}
	return r
}

func dedupe(sorted []string) []string {
	out := sorted[:0]
	for i, s := range sorted {
		if i == 0 || s != sorted[i-1] {
			out = append(out, s)
		}
	}
	return out
}

// currentRequestID is the ID of the request being served, for error bodies;
// the platform serves one request at a time.
var currentRequestID string

// handle answers the request envelope env with a response envelope.
func handle(env []byte) []byte {
	req, err := decodeRequest(env)
	if err != nil {
		Log.Error("the request envelope is malformed", "error", err.Error())
		return encodeResponse(Error(500, CodeInternal, "the actor could not read the request"))
	}
	currentRequestID = req.RequestID
	defer func() { currentRequestID = "" }()
	return encodeResponse(Serve(req))
}
