package catgen

import (
	"strings"
	"testing"
)

func TestGenerateRendersEveryEntry(t *testing.T) {
	src, err := Generate([]byte(`{"errors":[
		{"code":"not_found","status":404,"description":"No such thing."},
		{"code":"rate_limited","status":429,"description":"Slow down."}]}`))
	if err != nil {
		t.Fatalf("Generate: %v", err)
	}
	for _, want := range []string{
		"package apierr",
		"DO NOT EDIT",
		`CodeNotFound Code = "not_found"`,
		`CodeRateLimited Code = "rate_limited"`,
		`CodeNotFound:    {404, "No such thing."}`,
		`CodeRateLimited: {429, "Slow down."}`,
	} {
		if !strings.Contains(string(src), want) {
			t.Errorf("generated source lacks %q:\n%s", want, src)
		}
	}
}

func TestGenerateRefusesBadCatalogues(t *testing.T) {
	for _, tc := range []struct{ name, json string }{
		{"not json", `{"errors":[`},
		{"empty code", `{"errors":[{"code":"","status":400,"description":"x"}]}`},
		{"duplicate code", `{"errors":[{"code":"a","status":400,"description":"x"},{"code":"a","status":401,"description":"y"}]}`},
		{"status below 400", `{"errors":[{"code":"ok","status":200,"description":"x"}]}`},
		{"status above 599", `{"errors":[{"code":"odd","status":600,"description":"x"}]}`},
		{"code that is no identifier", `{"errors":[{"code":"not-found","status":404,"description":"x"}]}`},
		{"codes with one Go name", `{"errors":[{"code":"a_b","status":400,"description":"x"},{"code":"a__b","status":400,"description":"y"}]}`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if src, err := Generate([]byte(tc.json)); err == nil {
				t.Fatalf("Generate accepted it:\n%s", src)
			}
		})
	}
}

func TestGoName(t *testing.T) {
	for code, want := range map[string]string{
		"not_found":              "CodeNotFound",
		"invalid_json":           "CodeInvalidJson",
		"internal":               "CodeInternal",
		"unsupported_media_type": "CodeUnsupportedMediaType",
	} {
		if got := GoName(code); got != want {
			t.Errorf("GoName(%q) = %q, want %q", code, got, want)
		}
	}
}
