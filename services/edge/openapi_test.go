package edge_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/testenv"
	"github.com/gnome-platform/gnome/services/edge"
)

// registered is every (origin, method, path) the app registers, in
// OpenAPI's path syntax: HEAD goes with GET (Fiber adds it to every GET)
// and CONNECT, which OpenAPI cannot name, is left out.
func registered(app *fiber.App, origin string, into map[string]bool) {
	byPath := map[string]map[string]bool{}
	for _, r := range app.GetRoutes(true) {
		p := openAPIPath(r.Path)
		if byPath[p] == nil {
			byPath[p] = map[string]bool{}
		}
		byPath[p][r.Method] = true
	}
	for p, methods := range byPath {
		for m := range methods {
			if m == fiber.MethodConnect || (m == fiber.MethodHead && methods[fiber.MethodGet]) {
				continue
			}
			into[origin+" "+m+" "+p] = true
		}
	}
}

// openAPIPath is the test's own conversion, so that a bug in the edge's
// cannot hide itself.
func openAPIPath(p string) string {
	p = regexp.MustCompile(`:([A-Za-z0-9_]+)`).ReplaceAllString(p, "{$1}")
	return strings.ReplaceAll(p, "*", "{path}")
}

var httpMethods = []string{"get", "put", "post", "delete", "options", "head", "patch", "trace"}

type openAPIDoc struct {
	OpenAPI    string                                `json:"openapi"`
	Info       map[string]any                        `json:"info"`
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Schemas         map[string]json.RawMessage `json:"schemas"`
		SecuritySchemes map[string]json.RawMessage `json:"securitySchemes"`
	} `json:"components"`
}

type openAPIOp struct {
	OperationID string           `json:"operationId"`
	Summary     string           `json:"summary"`
	Origins     []string         `json:"x-origins"`
	Security    []map[string]any `json:"security"`
	Parameters  []struct {
		Name     string `json:"name"`
		In       string `json:"in"`
		Required bool   `json:"required"`
	} `json:"parameters"`
	Responses map[string]json.RawMessage `json:"responses"`
}

// TestOpenAPIMatchesRoutes walks the routes the edge really registers, on
// both its apps, and holds the document to them: no route missing, none
// stale; and checks the document's structure as OpenAPI 3.1 asks.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	env := testenv.Start(t)
	for _, registration := range []string{"false", "true"} {
		t.Run("ENABLE_REGISTRATION="+registration, func(t *testing.T) {
			cfg := env.Config(t, map[string]string{"ENABLE_REGISTRATION": registration})
			d := env.Deps(t, cfg)
			e := edge.New(d)
			testenv.Run(t, d, e)
			checkOpenAPI(t, e)
		})
	}
}

func checkOpenAPI(t *testing.T, e *edge.Service) {
	want := map[string]bool{}
	registered(e.App(), "platform", want)
	registered(e.ExperimentApp(), "experiment", want)
	if !want["platform GET /api/openapi.json"] || !want["experiment GET /experiments/{slug}/{path}"] {
		t.Fatalf("the route walk found too little: %v", want)
	}

	status, header, body := get(t, "http://"+e.Addr+"/api/openapi.json")
	if status != http.StatusOK || !strings.HasPrefix(header.Get("Content-Type"), "application/json") {
		t.Fatalf("GET /api/openapi.json: %d %s", status, header.Get("Content-Type"))
	}
	var doc openAPIDoc
	if err := json.Unmarshal(body, &doc); err != nil {
		t.Fatalf("the document is not JSON: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.1.") || doc.Info["title"] == "" || doc.Info["version"] == "" || len(doc.Paths) == 0 {
		t.Fatalf("missing required OpenAPI 3.1 members: openapi=%q info=%v paths=%d", doc.OpenAPI, doc.Info, len(doc.Paths))
	}

	got := map[string]bool{}
	ids := map[string]bool{}
	refs := regexp.MustCompile(`"\$ref":"#/components/schemas/([^"]+)"`)
	for path, item := range doc.Paths {
		if !strings.HasPrefix(path, "/") {
			t.Errorf("path %q does not start with /", path)
		}
		for method, raw := range item {
			if !slices.Contains(httpMethods, method) {
				t.Errorf("%s: %q is not an operation", path, method)
				continue
			}
			var op openAPIOp
			if err := json.Unmarshal(raw, &op); err != nil {
				t.Fatalf("%s %s: %v", method, path, err)
			}
			if len(op.Origins) == 0 || op.Summary == "" || op.OperationID == "" || len(op.Responses) == 0 || op.Security == nil {
				t.Errorf("%s %s: origins, summary, operationId, responses and security are required: %+v", method, path, op)
			}
			if ids[op.OperationID] {
				t.Errorf("operationId %q twice", op.OperationID)
			}
			ids[op.OperationID] = true
			for _, o := range op.Origins {
				got[o+" "+strings.ToUpper(method)+" "+path] = true
			}
			// Every path parameter is declared, and nothing else is.
			var inPath []string
			for _, m := range regexp.MustCompile(`\{([^}]+)\}`).FindAllStringSubmatch(path, -1) {
				inPath = append(inPath, m[1])
			}
			var declared []string
			for _, p := range op.Parameters {
				if p.In == "path" {
					if !p.Required {
						t.Errorf("%s %s: path parameter %s must be required", method, path, p.Name)
					}
					declared = append(declared, p.Name)
				}
			}
			sort.Strings(inPath)
			sort.Strings(declared)
			if !slices.Equal(inPath, declared) {
				t.Errorf("%s %s: path parameters %v, declared %v", method, path, inPath, declared)
			}
			for _, m := range refs.FindAllStringSubmatch(string(raw), -1) {
				if doc.Components.Schemas[m[1]] == nil {
					t.Errorf("%s %s: $ref to missing schema %s", method, path, m[1])
				}
			}
			for status := range op.Responses {
				if status != "default" && !regexp.MustCompile(`^[1-5][0-9][0-9]$`).MatchString(status) {
					t.Errorf("%s %s: response key %q", method, path, status)
				}
			}
		}
	}
	for k := range want {
		if !got[k] {
			t.Errorf("registered but not in the document: %s", k)
		}
	}
	for k := range got {
		if !want[k] {
			t.Errorf("in the document but not registered (stale): %s", k)
		}
	}

	// The error catalogue: every code, with its status and description.
	var errSchema struct {
		Properties struct {
			Error struct {
				Properties struct {
					Code struct {
						Enum []string `json:"enum"`
					} `json:"code"`
				} `json:"properties"`
			} `json:"error"`
		} `json:"properties"`
		Catalogue []struct {
			Code        string `json:"code"`
			Status      int    `json:"status"`
			Description string `json:"description"`
		} `json:"x-error-catalogue"`
	}
	if err := json.Unmarshal(doc.Components.Schemas["Error"], &errSchema); err != nil {
		t.Fatal(err)
	}
	codes := apierr.Codes()
	if len(codes) < 40 || len(errSchema.Properties.Error.Properties.Code.Enum) != len(codes) || len(errSchema.Catalogue) != len(codes) {
		t.Fatalf("error catalogue: %d codes, enum %d, catalogue %d", len(codes), len(errSchema.Properties.Error.Properties.Code.Enum), len(errSchema.Catalogue))
	}
	for i, c := range codes {
		e := errSchema.Catalogue[i]
		if errSchema.Properties.Error.Properties.Code.Enum[i] != string(c) || e.Code != string(c) || e.Status != c.Status() || e.Description == "" {
			t.Errorf("catalogue entry %d: %+v, want %s %d", i, e, c, c.Status())
		}
	}
	for _, s := range []string{"sessionCookie", "bearerToken"} {
		if doc.Components.SecuritySchemes[s] == nil {
			t.Errorf("security scheme %s missing", s)
		}
	}
	if !strings.Contains(string(doc.Components.Schemas["Manifest"]), `"schema_version"`) {
		t.Error("the manifest's JSON Schema is not embedded")
	}
}

// TestOpenAPIServedToAnyone: no sign-in, JSON, cacheable with an ETag that
// revalidates; and absent from experiment origins, as every platform route.
func TestOpenAPIServedToAnyone(t *testing.T) {
	w := startWorld(t, nil)
	r := w.do("GET", "/api/openapi.json", "", nil, "")
	if r.status != http.StatusOK || !strings.HasPrefix(r.header.Get("Content-Type"), "application/json") ||
		!strings.Contains(r.header.Get("Cache-Control"), "public") || r.header.Get("ETag") == "" {
		t.Fatalf("GET /api/openapi.json: %d %v", r.status, r.header)
	}
	if again := w.do("GET", "/api/openapi.json", "", map[string]string{"If-None-Match": r.header.Get("ETag")}, ""); again.status != http.StatusNotModified {
		t.Errorf("revalidation: %d, want 304", again.status)
	}
	// A caller's broken credentials do not keep them from the description.
	if r := w.do("GET", "/api/openapi.json", "not.a.token", nil, ""); r.status != http.StatusOK {
		t.Errorf("with a forged Bearer token: %d %s", r.status, r.body)
	}
	// It is read-only: other methods are refused with the contract's error.
	if r := w.do("POST", "/api/openapi.json", "", jsonType, `{}`); r.status < 400 || r.code() == "" {
		t.Errorf("POST /api/openapi.json: %d %s", r.status, r.body)
	}
	for _, p := range []string{"/api/openapi.json", "/api/docs"} {
		r := w.send("GET", testenv.ExperimentURL(w.addr, "demo", p), "", nil, "")
		if r.status != http.StatusNotFound || r.code() != string(apierr.CodeNotFound) {
			t.Errorf("GET %s on an experiment origin: %d %s, want 404 not_found", p, r.status, r.body)
		}
	}
}

// TestAPIDocsPage: the page lists every path of the document, every error
// code, links to the document, and loads nothing from elsewhere.
func TestAPIDocsPage(t *testing.T) {
	w := startWorld(t, nil)
	page := w.do("GET", "/api/docs", "", nil, "")
	if page.status != http.StatusOK || !strings.HasPrefix(page.header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /api/docs: %d %s", page.status, page.header.Get("Content-Type"))
	}
	html := string(page.body)
	var doc openAPIDoc
	if err := json.Unmarshal(w.do("GET", "/api/openapi.json", "", nil, "").body, &doc); err != nil {
		t.Fatal(err)
	}
	for p := range doc.Paths {
		if !strings.Contains(html, "<code>"+p+"</code>") {
			t.Errorf("the page lacks %s", p)
		}
	}
	for _, c := range apierr.Codes() {
		if !strings.Contains(html, "<code>"+string(c)+"</code>") {
			t.Errorf("the page lacks error code %s", c)
		}
	}
	if !strings.Contains(html, `href="/api/openapi.json"`) || !strings.Contains(html, "prefers-color-scheme: dark") ||
		!strings.Contains(html, `name="viewport"`) {
		t.Error("the page lacks the document's link, dark mode or the phone viewport")
	}
	for _, m := range regexp.MustCompile(`(?i)(?:src|href|action)\s*=\s*["']?([^"'\s>]*)`).FindAllStringSubmatch(html, -1) {
		if u := m[1]; !(strings.HasPrefix(u, "/") && !strings.HasPrefix(u, "//")) && !strings.HasPrefix(u, "#") {
			t.Errorf("the page refers elsewhere: %q", u)
		}
	}
	if strings.Contains(html, "@import") || strings.Contains(html, "url(") {
		t.Error("the page's style loads something")
	}
	// The inline style runs under the page's CSP nonce.
	nonce := regexp.MustCompile(`<style nonce="([^"]+)"`).FindStringSubmatch(html)
	if nonce == nil || !strings.Contains(page.header.Get("Content-Security-Policy"), "'nonce-"+nonce[1]+"'") {
		t.Errorf("style nonce %v not in CSP %q", nonce, page.header.Get("Content-Security-Policy"))
	}
}
