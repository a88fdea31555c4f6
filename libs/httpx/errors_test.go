package httpx_test

import (
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/httpx"
)

func TestErrorsAreRenderedInTheContractShape(t *testing.T) {
	ta := newApp(t, appOptions{})
	for _, tc := range []struct {
		name    string
		r       request
		status  int
		code    apierr.Code
		message string
		field   string
	}{
		{"catalogue error", request{target: "/conflict"}, 409, apierr.CodeConflict, "slug demo is taken", "/slug"},
		{"unknown route", request{target: "/no/such/route"}, 404, apierr.CodeNotFound, "the requested resource does not exist", ""},
		{"wrong method", request{method: "DELETE", target: "/small"}, 405, apierr.CodeMethodNotAllowed, "this route does not take that method", ""},
		{"plain error is internal", request{target: "/boom"}, 500, apierr.CodeInternal, "internal error", ""},
		{"fiber client error", request{target: "/teapot"}, 400, apierr.CodeBadRequest, "short and stout", ""},
		{"fiber server error", request{target: "/gateway"}, 500, apierr.CodeInternal, "internal error", ""},
		{"rate limited", request{target: "/limited"}, 429, apierr.CodeRateLimited, "slow down", ""},
		{"API path wants JSON even from a browser", request{target: "/api/conflict", headers: [][2]string{{"Accept", "text/html"}}}, 409, apierr.CodeConflict, "taken", ""},
		{"JSON preferred when both are accepted", request{target: "/conflict", headers: [][2]string{{"Accept", "text/html, application/json"}}}, 409, apierr.CodeConflict, "slug demo is taken", "/slug"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp := ta.do(t, tc.r)
			if resp.StatusCode() != tc.status {
				t.Fatalf("status %d, want %d; body %s", resp.StatusCode(), tc.status, resp.Body())
			}
			be := errorBody(t, resp)
			if be.Code != tc.code || be.Message != tc.message || be.Field != tc.field {
				t.Errorf("error %+v, want %s %q field %q", be, tc.code, tc.message, tc.field)
			}
			if strings.Contains(string(resp.Body()), "hunter2") || strings.Contains(string(resp.Body()), "10.0.0.7") {
				t.Errorf("the body reveals an internal cause: %s", resp.Body())
			}
		})
	}
	if got := header(ta.do(t, request{target: "/limited"}), fiber.HeaderRetryAfter); got != "7" {
		t.Errorf("Retry-After %q, want 7", got)
	}
	if got := header(ta.do(t, request{target: "/conflict"}), fiber.HeaderRetryAfter); got != "" {
		t.Errorf("Retry-After %q on a conflict", got)
	}
	var sawCause bool
	for _, err := range ta.internalErrors() {
		if strings.Contains(err.Error(), "hunter2") {
			sawCause = true
		}
		if ae := apierr.From(err); ae.Code != apierr.CodeInternal {
			t.Errorf("non-internal error %v passed to the internal-error log", err)
		}
	}
	if !sawCause {
		t.Error("the internal error's cause was not handed to the log callback")
	}
}

func TestErrorPageForBrowsers(t *testing.T) {
	ta := newApp(t, appOptions{})
	resp := ta.do(t, request{target: "/no/such/page", headers: [][2]string{{"Accept", "text/html,application/xhtml+xml,*/*;q=0.8"}}})
	if resp.StatusCode() != 404 {
		t.Fatalf("status %d", resp.StatusCode())
	}
	if ct := header(resp, fiber.HeaderContentType); !strings.HasPrefix(ct, "text/html") {
		t.Fatalf("content type %q, want HTML", ct)
	}
	body := string(resp.Body())
	rid := header(resp, httpx.HeaderRequestID)
	for _, want := range []string{"<title>404", "not_found", "the requested resource does not exist", rid} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q:\n%s", want, body)
		}
	}

	resp = ta.do(t, request{target: "/xss", headers: [][2]string{{"Accept", "text/html"}}})
	if strings.Contains(string(resp.Body()), "<script>alert") {
		t.Errorf("the message is not escaped:\n%s", resp.Body())
	}

	// A handler that wrote before failing leaves nothing of it on the page.
	for _, accept := range []string{"text/html", "application/json"} {
		resp = ta.do(t, request{target: "/partial", headers: [][2]string{{"Accept", accept}}})
		if resp.StatusCode() != 503 || strings.Contains(string(resp.Body()), "half-written") {
			t.Errorf("Accept %s: status %d body %q", accept, resp.StatusCode(), resp.Body())
		}
	}
}

func TestErrorHandlerDropsContentEncoding(t *testing.T) {
	app := fiber.New(fiber.Config{DisableStartupMessage: true, ErrorHandler: httpx.ErrorHandler(nil)})
	app.Use(httpx.RequestID())
	app.Get("/", func(c *fiber.Ctx) error {
		c.Set(fiber.HeaderContentEncoding, "br")
		return apierr.New(apierr.CodeGone, "invalidated")
	})
	ta := &testApp{app: app}
	resp := ta.do(t, request{target: "/"})
	if resp.StatusCode() != http.StatusGone || header(resp, fiber.HeaderContentEncoding) != "" {
		t.Errorf("status %d Content-Encoding %q", resp.StatusCode(), header(resp, fiber.HeaderContentEncoding))
	}
	if be := errorBody(t, resp); be.Code != apierr.CodeGone {
		t.Errorf("code %s", be.Code)
	}
}

func TestErrorHelpers(t *testing.T) {
	var ae *apierr.Error
	if err := httpx.NotFound("no experiment %q", "x"); !errors.As(err, &ae) || ae.Code != apierr.CodeNotFound || ae.Message != `no experiment "x"` {
		t.Errorf("NotFound = %v", err)
	}
	if err := httpx.Errorf(apierr.CodeForbidden, "%d%% of %s", 100, "nothing"); !errors.As(err, &ae) || ae.Code != apierr.CodeForbidden || ae.Message != "100% of nothing" {
		t.Errorf("Errorf = %v", err)
	}
}
