package edge_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

// The secret routes translate HTTP to the upload service's secret
// endpoints: the caller from the token, 201 for a new secret, errors in
// the contract's shape. What is malformed is refused before the service is
// asked, and no answer, refusals included, ever quotes a value.
func TestSecretRoutes(t *testing.T) {
	w := startWorld(t, nil)
	dev := w.developer("dev@example.com")
	const value = "sk-live-QWERTY-0123456789"
	var mu sync.Mutex
	var asked []string
	note := func(s string) { mu.Lock(); asked = append(asked, s); mu.Unlock() }
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	sec := func(name string, size int) uploadapi.Secret {
		return uploadapi.Secret{Name: name, Size: size, CreatedAt: at, CreatedBy: "dev@example.com", UpdatedAt: at, UpdatedBy: "dev@example.com", Key: uploadapi.SecretKeyCurrent}
	}
	list := func(_ context.Context, q uploadapi.SecretsQuery) (uploadapi.Secrets, error) {
		note("list " + q.Slug + " by " + q.Caller.Email)
		if q.Slug != "alpha" {
			return uploadapi.Secrets{}, apierr.New(apierr.CodeForbidden, "only the owner of %q and admins see the secrets of it", q.Slug)
		}
		return uploadapi.Secrets{Slug: "alpha", Secrets: []uploadapi.Secret{sec("API_KEY", 25)}, MaxCount: 32, MaxValue: 8192, NameRegex: "x"}, nil
	}
	set := func(_ context.Context, r uploadapi.SecretSet) (uploadapi.SecretResult, error) {
		note(fmt.Sprintf("set %s %s (%d bytes, value ok %v) by %s", r.Slug, r.Name, len(r.Value), r.Value == value, r.Caller.Email))
		switch r.Name {
		case "THEIRS":
			return uploadapi.SecretResult{}, apierr.New(apierr.CodeForbidden, "only the owner of %q and admins set the secrets of it", r.Slug)
		case "AGAIN":
			return uploadapi.SecretResult{Secret: sec(r.Name, len(r.Value))}, nil
		}
		return uploadapi.SecretResult{Secret: sec(r.Name, len(r.Value)), Created: true}, nil
	}
	del := func(_ context.Context, r uploadapi.SecretDelete) (uploadapi.Secret, error) {
		note("delete " + r.Slug + " " + r.Name + " by " + r.Caller.Email)
		if r.Name != "API_KEY" {
			return uploadapi.Secret{}, apierr.New(apierr.CodeNotFound, "experiment %q has no secret %s", r.Slug, r.Name)
		}
		return sec(r.Name, 25), nil
	}
	w.standIn(uploadapi.Service, bus.Endpoint(uploadapi.EndpointSecrets, list), bus.Endpoint(uploadapi.EndpointSecretSet, set), bus.Endpoint(uploadapi.EndpointSecretDelete, del))

	body := `{"value":"` + value + `"}`
	crossSite := map[string]string{"Cookie": "token=" + dev, "Content-Type": "application/json", "Sec-Fetch-Site": "cross-site"}
	otherOrigin := map[string]string{"Cookie": "token=" + dev, "Content-Type": "application/json", "Origin": "http://evil.example"}
	sameOrigin := map[string]string{"Cookie": "token=" + dev, "Content-Type": "application/json", "Sec-Fetch-Site": "same-origin"}
	path := "/api/experiments/alpha/secrets/"
	scenarios := []scenario{
		{name: "list, anonymous", path: "/api/experiments/alpha/secrets", status: 401, code: "unauthenticated"},
		{name: "set, anonymous", method: "PUT", path: path + "API_KEY", header: jsonType, body: body, status: 401, code: "unauthenticated"},
		{name: "delete, anonymous", method: "DELETE", path: path + "API_KEY", status: 401, code: "unauthenticated"},
		{name: "set by cookie from another site", method: "PUT", path: path + "API_KEY", header: crossSite, body: body, status: 403, code: "csrf_rejected"},
		{name: "set by cookie from another origin", method: "PUT", path: path + "API_KEY", header: otherOrigin, body: body, status: 403, code: "csrf_rejected"},
		{name: "delete by cookie from another site", method: "DELETE", path: path + "API_KEY", header: crossSite, status: 403, code: "csrf_rejected"},
		{name: "list", path: "/api/experiments/alpha/secrets", token: dev, status: 200,
			want:       []string{`"secrets":[{"name":"API_KEY","size":25,`, `"key":"current"`, `"max_count":32`},
			wantHeader: map[string]string{"Cache-Control": "no-store"}},
		{name: "list, not the owner", path: "/api/experiments/theirs/secrets", token: dev, status: 403, code: "forbidden"},
		{name: "list, no slug", path: "/api/experiments/Alpha%2E..%2Fx/secrets", token: dev, status: 404, code: "not_found"},
		{name: "set", method: "PUT", path: path + "API_KEY", token: dev, header: jsonType, body: body, status: 201,
			want: []string{`"created":true`, `"name":"API_KEY"`, `"size":25`}, wantHeader: map[string]string{"Cache-Control": "no-store"}},
		{name: "set by cookie, same origin", method: "PUT", path: path + "API_KEY", header: sameOrigin, body: body, status: 201},
		{name: "replace", method: "PUT", path: path + "AGAIN", token: dev, header: jsonType, body: body, status: 200, want: []string{`"created":false`}},
		{name: "set, not the owner", method: "PUT", path: path + "THEIRS", token: dev, header: jsonType, body: body, status: 403, code: "forbidden"},
		// Refused at the edge, never asked of the service.
		{name: "lower-case name", method: "PUT", path: path + "api_key", token: dev, header: jsonType, body: body, status: 422, code: "validation_failed", want: []string{`"field":"/name"`}},
		{name: "encoded slash in the name", method: "PUT", path: path + "A%2F..%2FB", token: dev, header: jsonType, body: body, status: 422, code: "validation_failed"},
		{name: "encoded NUL in the name", method: "PUT", path: path + "API%00KEY", token: dev, header: jsonType, body: body, status: 422, code: "validation_failed"},
		{name: "name of 65", method: "PUT", path: path + "K" + strings.Repeat("E", 64), token: dev, header: jsonType, body: body, status: 422, code: "validation_failed"},
		{name: "a form", method: "PUT", path: path + "API_KEY", token: dev, header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, body: "value=" + value, status: 415, code: "unsupported_media_type"},
		{name: "no body", method: "PUT", path: path + "API_KEY", token: dev, header: jsonType, status: 400, code: "invalid_json"},
		{name: "cut short", method: "PUT", path: path + "API_KEY", token: dev, header: jsonType, body: `{"value":"` + value, status: 400, code: "invalid_json"},
		{name: "broken mid-value", method: "PUT", path: path + "API_KEY", token: dev, header: jsonType, body: `{"value":"sk-live-QWERTY` + "\x01" + `0123456789"}`, status: 400, code: "invalid_json"},
		{name: "invalid UTF-8", method: "PUT", path: path + "API_KEY", token: dev, header: jsonType, body: `{"value":"sk-live-QWERTY` + "\xff\xfe" + `"}`, status: 400, code: "invalid_json"},
		{name: "a number", method: "PUT", path: path + "API_KEY", token: dev, header: jsonType, body: `{"value":12345}`, status: 422, code: "validation_failed", want: []string{`"field":"/value"`}},
		{name: "null", method: "PUT", path: path + "API_KEY", token: dev, header: jsonType, body: `{"value":null}`, status: 422, code: "validation_failed"},
		{name: "no value", method: "PUT", path: path + "API_KEY", token: dev, header: jsonType, body: `{}`, status: 422, code: "validation_failed"},
		{name: "an array", method: "PUT", path: path + "API_KEY", token: dev, header: jsonType, body: `["` + value + `"]`, status: 400, code: "invalid_json"},
		{name: "unknown field", method: "PUT", path: path + "API_KEY", token: dev, header: jsonType, body: `{"value":"` + value + `","owner":"root@example.com"}`, status: 400, code: "invalid_json"},
		{name: "trailing data", method: "PUT", path: path + "API_KEY", token: dev, header: jsonType, body: body + `{"value":"x"}`, status: 400, code: "invalid_json"},
		{name: "over the body limit", method: "PUT", path: path + "API_KEY", token: dev, header: jsonType, body: `{"value":"` + strings.Repeat("\\u0041", 8400) + `"}`, status: 413, code: "payload_too_large"},
		{name: "delete", method: "DELETE", path: path + "API_KEY", token: dev, status: 200, want: []string{`"deleted":{"name":"API_KEY"`}},
		{name: "delete what is not set", method: "DELETE", path: path + "NOPE", token: dev, status: 404, code: "not_found"},
		{name: "delete, no name", method: "DELETE", path: path + "lower", token: dev, status: 404, code: "not_found"},
	}
	w.run(scenarios)
	// No answer quotes the value, whole or in part.
	for _, sc := range scenarios {
		if sc.method != "PUT" {
			continue
		}
		tok := sc.token
		r := w.do(sc.method, sc.path, tok, sc.header, sc.body)
		if strings.Contains(string(r.body), "QWERTY") {
			t.Errorf("%s: the answer quotes the value: %s", sc.name, r.body)
		}
	}

	mu.Lock()
	defer mu.Unlock()
	setOK := "set alpha %s (25 bytes, value ok true) by dev@example.com"
	want := []string{
		"list alpha by dev@example.com", "list theirs by dev@example.com",
		fmt.Sprintf(setOK, "API_KEY"), fmt.Sprintf(setOK, "API_KEY"), fmt.Sprintf(setOK, "AGAIN"), fmt.Sprintf(setOK, "THEIRS"),
		"delete alpha API_KEY by dev@example.com", "delete alpha NOPE by dev@example.com",
	}
	// The second pass over the PUTs asks again exactly what passed.
	want = append(want, fmt.Sprintf(setOK, "API_KEY"), fmt.Sprintf(setOK, "API_KEY"), fmt.Sprintf(setOK, "AGAIN"), fmt.Sprintf(setOK, "THEIRS"))
	if !slices.Equal(asked, want) {
		t.Errorf("the service was asked:\n%s\nwant:\n%s", strings.Join(asked, "\n"), strings.Join(want, "\n"))
	}
}
