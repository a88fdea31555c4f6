package apierr_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/apierr/internal/catgen"
)

const schemaPath = "../../schemas/errors.json"

type schemaEntry struct {
	Code        string `json:"code"`
	Status      int    `json:"status"`
	Description string `json:"description"`
}

func readSchema(t *testing.T) []schemaEntry {
	t.Helper()
	raw, err := os.ReadFile(schemaPath)
	if err != nil {
		t.Fatalf("read catalogue: %v", err)
	}
	var cat struct {
		Errors []schemaEntry `json:"errors"`
	}
	if err := json.Unmarshal(raw, &cat); err != nil {
		t.Fatalf("parse catalogue: %v", err)
	}
	if len(cat.Errors) == 0 {
		t.Fatal("the catalogue is empty")
	}
	return cat.Errors
}

// The committed catalogue_gen.go must be exactly what the generator makes of
// schemas/errors.json (the Makefile's generate-check makes the same check).
func TestCatalogueIsGeneratedFromSchema(t *testing.T) {
	raw, err := os.ReadFile(schemaPath)
	if err != nil {
		t.Fatalf("read catalogue: %v", err)
	}
	want, err := catgen.Generate(raw)
	if err != nil {
		t.Fatalf("generate: %v", err)
	}
	got, err := os.ReadFile("catalogue_gen.go")
	if err != nil {
		t.Fatalf("read catalogue_gen.go: %v", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("catalogue_gen.go is out of date with schemas/errors.json: run make generate")
	}
}

func TestStatusAndDescriptionComeFromCatalogue(t *testing.T) {
	for _, e := range readSchema(t) {
		c := apierr.Code(e.Code)
		if !c.Known() {
			t.Errorf("%s: not known", e.Code)
		}
		if got := c.Status(); got != e.Status {
			t.Errorf("%s: Status() = %d, want %d", e.Code, got, e.Status)
		}
		if got := c.Description(); got != e.Description {
			t.Errorf("%s: Description() = %q, want %q", e.Code, got, e.Description)
		}
	}
}

func TestWellKnownStatuses(t *testing.T) {
	for _, tc := range []struct {
		code apierr.Code
		want int
	}{
		{apierr.CodeBadRequest, http.StatusBadRequest},
		{apierr.CodeValidationFailed, http.StatusUnprocessableEntity},
		{apierr.CodeUnauthenticated, http.StatusUnauthorized},
		{apierr.CodeForbidden, http.StatusForbidden},
		{apierr.CodeNotFound, http.StatusNotFound},
		{apierr.CodeGone, http.StatusGone},
		{apierr.CodePayloadTooLarge, http.StatusRequestEntityTooLarge},
		{apierr.CodeRateLimited, http.StatusTooManyRequests},
		{apierr.CodeInternal, http.StatusInternalServerError},
		{apierr.CodeBadGateway, http.StatusBadGateway},
		{apierr.CodeUnavailable, http.StatusServiceUnavailable},
		{apierr.CodeTimeout, http.StatusGatewayTimeout},
		{apierr.Code("no_such_code"), http.StatusInternalServerError},
	} {
		if got := tc.code.Status(); got != tc.want {
			t.Errorf("%s.Status() = %d, want %d", tc.code, got, tc.want)
		}
	}
	if apierr.Code("no_such_code").Known() {
		t.Error("an unknown code reports Known")
	}
	if d := apierr.Code("no_such_code").Description(); d != "" {
		t.Errorf("an unknown code has description %q", d)
	}
}

func TestNewFormatsMessage(t *testing.T) {
	e := apierr.New(apierr.CodeNotFound, "no experiment %q", "demo")
	if e.Code != apierr.CodeNotFound || e.Message != `no experiment "demo"` {
		t.Fatalf("New = %+v", e)
	}
	if got := e.Error(); got != `not_found: no experiment "demo"` {
		t.Errorf("Error() = %q", got)
	}
	if e.Unwrap() != nil {
		t.Error("New has a cause")
	}
	if e.OnField("/slug") != e || e.Field != "/slug" {
		t.Errorf("OnField did not set the field on the same error: %+v", e)
	}
}

func TestWrapKeepsCauseOutOfTheMessage(t *testing.T) {
	cause := errors.New("dial tcp 10.0.0.7:27017: connection refused")
	e := apierr.Wrap(apierr.CodeUnavailable, cause, "the database is not available")
	if !errors.Is(e, cause) {
		t.Error("errors.Is does not find the cause")
	}
	if !strings.Contains(e.Error(), cause.Error()) {
		t.Errorf("Error() = %q lacks the cause for logs", e.Error())
	}
	body := e.ToBody("req-1")
	if strings.Contains(body.Error.Message, "10.0.0.7") {
		t.Errorf("the caller's message reveals the cause: %q", body.Error.Message)
	}
}

func TestFrom(t *testing.T) {
	if apierr.From(nil) != nil {
		t.Fatal("From(nil) is not nil")
	}

	orig := apierr.New(apierr.CodeConflict, "slug %s is taken", "demo").OnField("/slug")
	for name, err := range map[string]error{
		"itself":       orig,
		"wrapped once": fmt.Errorf("create experiment: %w", orig),
		"wrapped deep": fmt.Errorf("handler: %w", fmt.Errorf("store: %w", orig)),
		"joined":       errors.Join(errors.New("first"), orig),
	} {
		if got := apierr.From(err); got != orig {
			t.Errorf("%s: From = %+v, want the catalogue error itself", name, got)
		}
	}

	plain := errors.New("mongo: password=hunter2 rejected")
	got := apierr.From(plain)
	if got.Code != apierr.CodeInternal {
		t.Errorf("plain error: code %s, want internal", got.Code)
	}
	if got.Message != "internal error" || strings.Contains(got.Message, "hunter2") {
		t.Errorf("plain error: message %q reveals or differs from \"internal error\"", got.Message)
	}
	if !errors.Is(got, plain) {
		t.Error("plain error: the cause is lost for logs")
	}
	if b, _ := json.Marshal(got.ToBody("r")); strings.Contains(string(b), "hunter2") {
		t.Errorf("plain error: the body reveals the cause: %s", b)
	}
}

func TestToBodyIsTheContractShape(t *testing.T) {
	for _, tc := range []struct {
		name string
		err  *apierr.Error
		rid  string
		want string
	}{
		{"with request id", apierr.New(apierr.CodeNotFound, "nope"), "req-1234",
			`{"error":{"code":"not_found","message":"nope","request_id":"req-1234"}}`},
		{"with field", apierr.New(apierr.CodeValidationFailed, "slug is invalid").OnField("/slug"), "r",
			`{"error":{"code":"validation_failed","message":"slug is invalid","field":"/slug","request_id":"r"}}`},
		{"without request id", apierr.New(apierr.CodeForbidden, "no"), "",
			`{"error":{"code":"forbidden","message":"no"}}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.err.ToBody(tc.rid))
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.want {
				t.Errorf("body = %s, want %s", b, tc.want)
			}
		})
	}
}

func TestFromBody(t *testing.T) {
	for _, tc := range []struct {
		name     string
		in       apierr.BodyError
		wantCode apierr.Code
	}{
		{"known code kept", apierr.BodyError{Code: apierr.CodeForbidden, Message: "not yours", Field: "/owner"}, apierr.CodeForbidden},
		{"every field kept", apierr.BodyError{Code: apierr.CodeValidationFailed, Message: "bad", Field: "/x"}, apierr.CodeValidationFailed},
		{"unknown code is bad_gateway", apierr.BodyError{Code: "teapot", Message: "short and stout"}, apierr.CodeBadGateway},
		{"empty code is bad_gateway", apierr.BodyError{Message: "?"}, apierr.CodeBadGateway},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := apierr.FromBody(tc.in)
			if got.Code != tc.wantCode || got.Message != tc.in.Message || got.Field != tc.in.Field {
				t.Errorf("FromBody(%+v) = %+v, want code %s with message and field kept", tc.in, got, tc.wantCode)
			}
		})
	}
	// A body survives a round trip through JSON.
	orig := apierr.New(apierr.CodeGone, "invalidated").OnField("/id")
	raw, _ := json.Marshal(orig.ToBody("rid-1").Error)
	var be apierr.BodyError
	if err := json.Unmarshal(raw, &be); err != nil {
		t.Fatal(err)
	}
	if got := apierr.FromBody(be); got.Code != orig.Code || got.Message != orig.Message || got.Field != orig.Field {
		t.Errorf("round trip = %+v, want %+v", got, orig)
	}
}
