package edge

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"slices"
	"strconv"
	"strings"

	_ "embed"

	"github.com/gofiber/fiber/v2"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authn"
	"github.com/gnome-platform/gnome/libs/bundle"
	"github.com/gnome-platform/gnome/libs/exportapi"
	"github.com/gnome-platform/gnome/libs/httpx"
)

// The API description: GET /api/openapi.json is an OpenAPI 3.1 document of
// every route the edge serves, on the platform's origin and on the
// experiments' origins, and GET /api/docs is a page of it. Both come from
// apiRoutes below; TestOpenAPIMatchesRoutes walks the routes the edge really
// registers and fails on any route missing here and on any route here the
// edge does not serve, so the description cannot drift from the code.

// Where a route is served.
const (
	onPlatform   = "platform"
	onExperiment = "experiment"
)

// anyMethod is a route registered for every method (Fiber's All); the
// document lists it under each method OpenAPI can name.
const anyMethod = "ANY"

// anyMethods are the methods a route of anyMethod is described under: HEAD
// is implied by GET, and OpenAPI has no CONNECT.
var anyMethods = []string{"GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE"}

// Who may call a route.
type apiAccess int

const (
	// anyone: no credentials are needed or looked at.
	anyone apiAccess = iota
	// accessRules: credentials are used when sent; the experiment's access
	// rules decide.
	accessRules
	// signedIn: a signed-in user (the service then decides by role and
	// ownership).
	signedIn
	// adminOnly: an administrator.
	adminOnly
)

func (a apiAccess) String() string {
	return [...]string{"anyone", "as the experiment's access rules allow", "signed in", "admin"}[a]
}

// apiPayload is a request or response body.
type apiPayload struct {
	media  string
	schema string // a name of apiSchemas, or ""
	desc   string
}

// apiParam is a query parameter (path parameters come from the path).
type apiParam struct {
	name, desc string
	required   bool
}

// apiRoute is one route as the document describes it.
type apiRoute struct {
	origin  string
	method  string
	path    string // Fiber's syntax, as registered
	tag     string
	summary string
	who     string // more precise than auth, when it helps
	auth    apiAccess
	query   []apiParam
	body    *apiPayload
	status  int
	reply   apiPayload
	limited bool
	errs    []apierr.Code
}

var (
	jsonReply  = func(schema, desc string) apiPayload { return apiPayload{"application/json", schema, desc} }
	jsonBodyOf = func(schema string) *apiPayload {
		return &apiPayload{"application/json", schema, ""}
	}
	htmlPage   = apiPayload{"text/html", "", "an HTML page"}
	redirect   = apiPayload{"", "", "a redirect (Location)"}
	noContent  = apiPayload{"", "", "no body"}
	nextParam  = apiParam{"next", "a path of the same origin to go to afterwards", false}
	manageTag  = "Experiment management"
	exportsTag = "Exports"
)

// apiRoutes is every route the edge registers, in the order of newApp and
// newExperimentApp.
func apiRoutes(registration bool) []apiRoute {
	p, x := onPlatform, onExperiment
	rs := []apiRoute{
		{origin: p, method: "GET", path: "/health", tag: "Health", summary: "Whether NATS and the database answer", auth: anyone, status: 200, reply: jsonReply("Health", "ok; 503 with the same shape when a dependency is down")},
		{origin: p, method: "GET", path: "/health/detailed", tag: "Health", summary: "Each component's health: database, NATS, JetStream, object store, disk, services", who: "anyone (admins see more)", auth: anyone, status: 200, reply: jsonReply("", "the components and their states")},
		{origin: p, method: "GET", path: "/metrics", tag: "Health", summary: "Prometheus metrics", who: "loopback, METRICS_ALLOWED_CIDRS, or a scraper with METRICS_TOKEN", auth: anyone, status: 200, reply: apiPayload{"text/plain", "", "Prometheus text format"}, errs: []apierr.Code{apierr.CodeForbidden}},
		{origin: p, method: "GET", path: "/api/openapi.json", tag: "API description", summary: "This document (OpenAPI 3.1)", auth: anyone, status: 200, reply: jsonReply("", "the OpenAPI document")},
		{origin: p, method: "GET", path: "/api/docs", tag: "API description", summary: "A readable page of this document", auth: anyone, status: 200, reply: htmlPage},
		{origin: p, method: "GET", path: "/auth/login", tag: "Accounts", summary: "The sign-in page", auth: anyone, query: []apiParam{nextParam}, status: 200, reply: htmlPage, limited: true},
		{origin: p, method: "POST", path: "/auth/login", tag: "Accounts", summary: "Sign in (form or JSON): sets the session cookie", auth: anyone, body: jsonBodyOf("Credentials"), status: 200, reply: jsonReply("SignedIn", "the user; a form gets 303 to next"), limited: true, errs: []apierr.Code{apierr.CodeInvalidCredentials}},
		{origin: p, method: "POST", path: "/auth/logout", tag: "Accounts", summary: "Sign out: the token stops working everywhere; the cookie is cleared", who: "anyone (ends the caller's session, if any)", auth: accessRules, status: 200, reply: jsonReply("", "done; a form gets 303")},
		{origin: p, method: "GET", path: "/api/me", tag: "Accounts", summary: "The signed-in user: email and roles", auth: signedIn, status: 200, reply: jsonReply("User", "")},
		{origin: p, method: "GET", path: "/api/tokens", tag: "API tokens", summary: "The caller's personal API tokens, with last use (never their secrets)", auth: signedIn, status: 200, reply: jsonReply("Tokens", "")},
		{origin: p, method: "POST", path: "/api/tokens", tag: "API tokens", summary: "Create a personal API token; its secret is in this answer only", auth: signedIn, body: jsonBodyOf("TokenCreate"), status: 201, reply: jsonReply("TokenCreated", ""), errs: []apierr.Code{apierr.CodeConflict}},
		{origin: p, method: "DELETE", path: "/api/tokens/:id", tag: "API tokens", summary: "Revoke one of the caller's tokens (an admin's: anyone's); it stops working everywhere within a second", auth: signedIn, status: 204, reply: noContent},
		{origin: p, method: "GET", path: "/account", tag: "Accounts", summary: "The signed-in user's page: email, roles, API tokens, password change", auth: signedIn, status: 200, reply: htmlPage},
		{origin: p, method: "POST", path: "/api/me/password", tag: "Accounts", summary: "Change one's own password (JSON, or the account page's form: 303 back); the caller's other sessions end, API tokens keep working", auth: signedIn, body: jsonBodyOf("PasswordChange"), status: 200, reply: jsonReply("", "changed; the session cookie, if one was used, is renewed"), limited: true, errs: []apierr.Code{apierr.CodeInvalidCredentials, apierr.CodeValidationFailed}},
		{origin: p, method: "POST", path: "/admin/api/users/:email/password-reset", tag: "Admin", summary: "Reset a user's password: the old one stops working, their sessions end, and the answer holds a one-time link (reset_url, and its code) valid 24 h, shown only this once", auth: adminOnly, status: 200, reply: jsonReply("", "{email, reset_url, code, expires_at}"), limited: true, errs: []apierr.Code{apierr.CodeConflict}},
		{origin: p, method: "GET", path: "/auth/reset", tag: "Accounts", summary: "The page to choose a new password with a reset link's code (taken from the link's #code= fragment)", auth: anyone, status: 200, reply: htmlPage, limited: true},
		{origin: p, method: "POST", path: "/auth/reset", tag: "Accounts", summary: "Choose a new password with a reset code (JSON {code, new_password}, or the page's form: 303 to /account); the code works once; signs the user in", auth: anyone, body: &apiPayload{"application/json", "", "{code, new_password}"}, status: 200, reply: jsonReply("SignedIn", "the user, signed in; a form gets 303"), limited: true, errs: []apierr.Code{apierr.CodeGone, apierr.CodeValidationFailed}},
		{origin: p, method: "GET", path: "/admin/api/users/:email/tokens", tag: "Admin", summary: "A user's personal API tokens", auth: adminOnly, status: 200, reply: jsonReply("Tokens", "")},
		{origin: p, method: "DELETE", path: "/admin/api/users/:email/tokens/:id", tag: "Admin", summary: "Revoke a user's personal API token", auth: adminOnly, status: 204, reply: noContent},
		{origin: p, method: "GET", path: "/api/experiments/:slug/users", tag: manageTag, summary: "The experiment's own accounts (sub_auth)", who: "owner, admin", auth: signedIn, status: 200, reply: jsonReply("ExpUsers", "")},
		{origin: p, method: "PATCH", path: "/api/experiments/:slug/users/:id", tag: manageTag, summary: "Disable or enable one of the experiment's accounts", who: "owner, admin", auth: signedIn, body: jsonBodyOf("ExpUserUpdate"), status: 200, reply: jsonReply("ExpUser", "")},
		{origin: p, method: "DELETE", path: "/api/experiments/:slug/users/:id", tag: manageTag, summary: "Delete one of the experiment's accounts", who: "owner, admin", auth: signedIn, status: 204, reply: noContent},
		{origin: p, method: "GET", path: "/api/experiments/:slug/links", tag: manageTag, summary: "The experiment's study links", who: "owner, admin", auth: signedIn, status: 200, reply: jsonReply("Links", "")},
		{origin: p, method: "POST", path: "/api/experiments/:slug/links", tag: manageTag, summary: "Create study links", who: "owner, admin", auth: signedIn, body: jsonBodyOf("LinksCreate"), status: 201, reply: jsonReply("Links", "")},
		{origin: p, method: "GET", path: "/api/experiments/:slug/links/runs", tag: manageTag, summary: "The runs of the study links (JSON, or CSV with format=csv)", who: "owner, admin", auth: signedIn, query: []apiParam{{"format", "csv for a CSV file", false}}, status: 200, reply: jsonReply("Runs", "")},
		{origin: p, method: "DELETE", path: "/api/experiments/:slug/links/:id", tag: manageTag, summary: "Revoke a study link", who: "owner, admin", auth: signedIn, status: 200, reply: jsonReply("", "the revoked link")},
		{origin: p, method: "GET", path: "/auth/experiment", tag: "Accounts", summary: "The identity hand-off to an experiment's origin", auth: accessRules, query: []apiParam{{"slug", "the experiment", true}, {"next", "the path to open on its origin", false}, {"login", "1 to sign in first", false}}, status: 303, reply: redirect, limited: true},
		{origin: p, method: "GET", path: "/admin", tag: "Admin", summary: "The admin console: every experiment, filtered by search, owner and status", auth: adminOnly, query: []apiParam{{"q", "text in the name, slug or description", false}, {"owner", "the owner's email", false}, {"status", "active, draft, inactive or archived", false}}, status: 200, reply: htmlPage},
		{origin: p, method: "GET", path: "/admin/users", tag: "Admin", summary: "The admin console: users and roles", auth: adminOnly, status: 200, reply: htmlPage},
		{origin: p, method: "GET", path: "/admin/audit", tag: "Admin", summary: "The admin console: the audit log (the filters of GET /admin/api/audit)", auth: adminOnly, status: 200, reply: htmlPage},
		{origin: p, method: "GET", path: "/admin/exports", tag: "Admin", summary: "The admin console: exports, with invalidate", auth: adminOnly, query: []apiParam{{"slug", "one experiment's exports", false}}, status: 200, reply: htmlPage},
		{origin: p, method: "GET", path: "/admin/health", tag: "Admin", summary: "The admin console: live health of components and service instances", auth: adminOnly, status: 200, reply: htmlPage},
		{origin: p, method: "GET", path: "/admin/api/audit", tag: "Admin", summary: "A page of the audit log, newest first; who and target match whole values, what a prefix, all as plain text", auth: adminOnly, query: []apiParam{{"who", "who acted (email)", false}, {"what", "the start of the action, e.g. role.", false}, {"target", "what was acted on", false}, {"since", "from this day (2025-06-01, UTC) or RFC 3339 time, inclusive", false}, {"until", "to this day, inclusive, or before this RFC 3339 time", false}, {"limit", "1 to 200, default 50", false}, {"cursor", "the next of the page before", false}}, status: 200, reply: jsonReply("AuditPage", "")},
		{origin: p, method: "GET", path: "/admin/api/users", tag: "Admin", summary: "Every user and their roles", auth: adminOnly, status: 200, reply: jsonReply("Users", "")},
		{origin: p, method: "POST", path: "/admin/api/users", tag: "Admin", summary: "Create a user", auth: adminOnly, body: jsonBodyOf("CreateUser"), status: 201, reply: jsonReply("User", ""), errs: []apierr.Code{apierr.CodeConflict}},
		{origin: p, method: "PATCH", path: "/admin/api/users/:email", tag: "Admin", summary: "Change a user (disable, enable, password)", auth: adminOnly, body: jsonBodyOf("UpdateUser"), status: 200, reply: jsonReply("User", "")},
		{origin: p, method: "POST", path: "/admin/api/users/:email/roles/:role", tag: "Admin", summary: "Grant a role", auth: adminOnly, status: 200, reply: jsonReply("User", "")},
		{origin: p, method: "DELETE", path: "/admin/api/users/:email/roles/:role", tag: "Admin", summary: "Revoke a role", auth: adminOnly, status: 200, reply: jsonReply("User", "")},
		{origin: p, method: "GET", path: "/", tag: "Experiments", summary: "The home page: the active experiments this visitor may open", auth: accessRules, status: 200, reply: htmlPage},
		{origin: p, method: "GET", path: "/my-experiments", tag: "Experiments", summary: "The caller's own experiments, with upload and status switch (a page)", who: "admin, developer", auth: signedIn, status: 200, reply: htmlPage},
		{origin: p, method: "GET", path: "/my-experiments/:slug", tag: "Experiments", summary: "One experiment's page: status, versions, actor and its live log, indexes, grants, study links, secrets, exports, research data, delete", who: "owner, admin", auth: signedIn, status: 200, reply: htmlPage},
		{origin: p, method: "GET", path: "/api/experiments", tag: "Experiments", summary: "The experiments this caller may see", auth: accessRules, status: 200, reply: jsonReply("Experiments", "")},
		{origin: p, method: "POST", path: "/api/experiments", tag: "Experiments", summary: "Upload an experiment bundle (ZIP, multipart field file or application/zip); a re-upload makes a new version (201), or none when it is the current version's very bundle (200 with unchanged: true)", who: "admin, developer", auth: signedIn, body: &apiPayload{"application/zip", "", "the bundle (or multipart/form-data with field file); its manifest.json follows Manifest"}, status: 201, reply: jsonReply("ExperimentChange", "the experiment, with warnings"), errs: []apierr.Code{apierr.CodeBundleTooLarge, apierr.CodeBundleNotZip, apierr.CodeManifestInvalid, apierr.CodeConflict}},
		{origin: p, method: "POST", path: "/admin/api/upload-experiment", tag: "Experiments", summary: "Alias of POST /api/experiments", who: "admin, developer", auth: signedIn, body: &apiPayload{"multipart/form-data", "", "field file: the bundle"}, status: 201, reply: jsonReply("ExperimentChange", ""), errs: []apierr.Code{apierr.CodeBundleTooLarge, apierr.CodeBundleNotZip, apierr.CodeManifestInvalid, apierr.CodeConflict}},
		{origin: p, method: "GET", path: "/api/experiments/:slug", tag: "Experiments", summary: "One experiment: manifest, owner, version, checksum, status, actor and index state", auth: accessRules, status: 200, reply: jsonReply("Experiment", "")},
		{origin: p, method: "PATCH", path: "/api/experiments/:slug", tag: "Experiments", summary: "Change status or manifest fields", who: "owner, admin", auth: signedIn, body: jsonBodyOf("ExperimentPatch"), status: 200, reply: jsonReply("ExperimentChange", "")},
		{origin: p, method: "DELETE", path: "/api/experiments/:slug", tag: "Experiments", summary: "Delete the experiment: config, actor, data, exports", who: "owner, admin", auth: signedIn, body: jsonBodyOf("DeleteConfirm"), status: 200, reply: jsonReply("", "{\"deleted\": slug}")},
		{origin: p, method: "GET", path: "/api/experiments/:slug/grants", tag: manageTag, summary: "The data grants of the experiment", who: "owner, admin", auth: signedIn, status: 200, reply: jsonReply("Grants", "")},
		{origin: p, method: "POST", path: "/api/experiments/:slug/grants", tag: manageTag, summary: "Let another experiment read this one's data", who: "owner, admin", auth: signedIn, body: jsonBodyOf("GrantRequest"), status: 201, reply: jsonReply("", "{grant, created}; 200 when it existed")},
		{origin: p, method: "DELETE", path: "/api/experiments/:slug/grants/:reader", tag: manageTag, summary: "Revoke a data grant", who: "owner, admin", auth: signedIn, status: 200, reply: jsonReply("", "{revoked}")},
		{origin: p, method: "GET", path: "/api/experiments/:slug/secrets", tag: manageTag, summary: "The names of the experiment's secrets (never their values)", who: "owner, admin", auth: signedIn, status: 200, reply: jsonReply("Secrets", "")},
		{origin: p, method: "PUT", path: "/api/experiments/:slug/secrets/:name", tag: manageTag, summary: "Set a secret (write-only)", who: "owner, admin", auth: signedIn, body: jsonBodyOf("SecretValue"), status: 201, reply: jsonReply("", "the secret's record, without its value; 200 when it replaced one")},
		{origin: p, method: "DELETE", path: "/api/experiments/:slug/secrets/:name", tag: manageTag, summary: "Remove a secret", who: "owner, admin", auth: signedIn, status: 200, reply: jsonReply("", "{deleted}")},
		{origin: p, method: "GET", path: "/api/experiments/:slug/versions", tag: manageTag, summary: "The experiment's kept versions, newest first: checksum, size, uploader, time, whether current and whether its bundle is still stored", who: "owner, admin", auth: signedIn, status: 200, reply: jsonReply("Versions", "")},
		{origin: p, method: "POST", path: "/api/experiments/:slug/rollback", tag: manageTag, summary: "Make a kept version current again (no new version; changed is false when it was current already)", who: "owner, admin", auth: signedIn, body: jsonBodyOf("Rollback"), status: 200, reply: jsonReply("RollbackResult", ""), errs: []apierr.Code{apierr.CodeGone}},
		{origin: p, method: "GET", path: "/api/experiments/:slug/logs", tag: manageTag, summary: "The actor's log lines (gnome.log, stdout, stderr, console) of the last day, oldest first; with follow=1 or Accept: text/event-stream, then every new line as it comes (server-sent events \"log\", id = the line's seq, resumable with Last-Event-ID)", who: "owner, admin", auth: signedIn, query: []apiParam{{"since", "RFC 3339 time or a duration back from now (10m, 2h); default 1h, at most the 24 h kept", false}, {"limit", "the last this many lines, 1 to 1000; default 100", false}, {"follow", "1: go on as server-sent events", false}}, status: 200, reply: jsonReply("ActorLogs", "")},
		{origin: p, method: "GET", path: "/api/experiments/:slug/permissions", tag: manageTag, summary: "Who holds which permission on the experiment", who: "owner, admin", auth: signedIn, status: 200, reply: jsonReply("Permissions", "")},
		{origin: p, method: "POST", path: "/api/experiments/:slug/permissions", tag: manageTag, summary: "Grant a user a permission on the experiment", who: "owner, admin", auth: signedIn, body: jsonBodyOf("PermissionGrant"), status: 201, reply: jsonReply("Permissions", "200 when it was held already")},
		{origin: p, method: "DELETE", path: "/api/experiments/:slug/permissions/:email", tag: manageTag, summary: "Revoke a user's permissions on the experiment", who: "owner, admin", auth: signedIn, status: 200, reply: jsonReply("Permissions", "")},
		{origin: p, method: anyMethod, path: "/experiments/:slug", tag: "Experiment origin", summary: "On the platform's origin: 308 to the same path on the experiment's origin", auth: anyone, status: 308, reply: redirect, errs: []apierr.Code{apierr.CodeUnavailable}},
		{origin: p, method: anyMethod, path: "/experiments/:slug/*", tag: "Experiment origin", summary: "On the platform's origin: 308 to the same path on the experiment's origin", auth: anyone, status: 308, reply: redirect, errs: []apierr.Code{apierr.CodeUnavailable}},
		{origin: p, method: "POST", path: "/api/experiments/:slug/exports", tag: exportsTag, summary: "Ask for an export package: 202 queued, or 200 with a ready one", who: "upload-ready: per access rules; standalone and docker: owner, admin", auth: signedIn, body: jsonBodyOf("ExportRequest"), status: 202, reply: jsonReply("ExportLog", "the export (200 when a ready one is reused)"), limited: true},
	}
	if registration {
		// Registered only when ENABLE_REGISTRATION=true (accounts.go).
		rs = append(rs,
			apiRoute{origin: p, method: "GET", path: "/auth/register", tag: "Accounts", summary: "The sign-up page", who: "anyone (registration is open: ENABLE_REGISTRATION=true)", auth: anyone, status: 200, reply: htmlPage, limited: true},
			apiRoute{origin: p, method: "POST", path: "/auth/register", tag: "Accounts", summary: "Create an account with role user", who: "anyone (registration is open: ENABLE_REGISTRATION=true)", auth: anyone, body: jsonBodyOf("Credentials"), status: 201, reply: jsonReply("SignedIn", "the new user, signed in"), limited: true, errs: []apierr.Code{apierr.CodeConflict}},
		)
	}
	for _, t := range exportapi.Types {
		rs = append(rs, apiRoute{origin: p, method: "GET", path: "/api/package-" + string(t) + "/:slug", tag: exportsTag,
			summary: "Alias: ask for a " + string(t) + " export", who: "as POST /api/experiments/{slug}/exports", auth: signedIn,
			status: 202, reply: jsonReply("ExportLog", ""), limited: true})
	}
	rs = append(rs, []apiRoute{
		{origin: p, method: "GET", path: "/api/experiments/:slug/data", tag: exportsTag, summary: "The experiment's collections with their documents (research data)", who: "owner, admin", auth: signedIn, status: 200, reply: jsonReply("DataCollections", "")},
		{origin: p, method: "GET", path: "/api/experiments/:slug/data/stats", tag: exportsTag, summary: "The sizes of the experiment's collections, which are past the size where the store slows down, and its actor's recent slow data requests", who: "owner, admin", auth: signedIn, status: 200, reply: jsonReply("DataStats", "")},
		{origin: p, method: "POST", path: "/api/experiments/:slug/data", tag: exportsTag, summary: "Ask for one collection as CSV or JSON Lines (a research-data export): 202 queued, or 200 with a ready one; download it at /api/exports/{id}/download", who: "owner, admin", auth: signedIn, body: jsonBodyOf("DataRequest"), status: 202, reply: jsonReply("ExportLog", "the export (200 when a ready one is reused)"), limited: true},
		{origin: p, method: "GET", path: "/api/exports/:id", tag: exportsTag, summary: "An export's status, progress, size and checksum", who: "requester, admin", auth: signedIn, status: 200, reply: jsonReply("ExportLog", "")},
		{origin: p, method: "GET", path: "/api/exports/:id/events", tag: exportsTag, summary: "An export's progress as server-sent events", who: "requester, admin", auth: signedIn, status: 200, reply: apiPayload{"text/event-stream", "ExportLog", "each event's data is the export"}},
		{origin: p, method: "GET", path: "/api/exports/:id/download", tag: exportsTag, summary: "Download the export package (or research data: text/csv or application/jsonl)", who: "requester, admin", auth: signedIn, status: 200, reply: apiPayload{"application/zip", "", "the package; a research-data export's file is CSV or JSON Lines"}, limited: true, errs: []apierr.Code{apierr.CodeGone}},
		{origin: p, method: "GET", path: "/admin/api/exports", tag: "Admin", summary: "Export logs", auth: adminOnly, query: []apiParam{{"slug", "only this experiment's", false}}, status: 200, reply: jsonReply("ExportLogs", "")},
		{origin: p, method: "POST", path: "/admin/api/exports/:id/invalidate", tag: "Admin", summary: "Invalidate an export", auth: adminOnly, status: 200, reply: jsonReply("ExportLog", "")},

		{origin: x, method: "GET", path: "/", tag: "Experiment origin", summary: "Redirect to the experiment's start page", auth: anyone, status: 302, reply: redirect},
		{origin: x, method: "GET", path: "/_gnome/session", tag: "Experiment origin", summary: "The end of the identity hand-off: sets the experiment's session cookie", auth: anyone, query: []apiParam{{"code", "the hand-off code", true}}, status: 303, reply: redirect},
		{origin: x, method: "GET", path: "/_gnome/live.js", tag: "Experiment origin", summary: "The live channels' browser helper", auth: anyone, status: 200, reply: apiPayload{"text/javascript", "", "JavaScript"}},
		{origin: x, method: "GET", path: "/_gnome/gnome.d.ts", tag: "Experiment origin", summary: "The JavaScript actor API's TypeScript declarations", auth: anyone, status: 200, reply: apiPayload{"application/typescript", "", "TypeScript declarations"}},
		{origin: x, method: "POST", path: "/_gnome/logout", tag: "Experiment origin", summary: "Sign out (everywhere)", who: "anyone (ends the visitor's session, if any)", auth: accessRules, status: 204, reply: apiPayload{"", "", "signed out; a form gets 303"}},
		{origin: x, method: "GET", path: "/_gnome/auth/login", tag: "Experiment accounts", summary: "The experiment's own sign-in page (sub_auth; else 404)", auth: anyone, query: []apiParam{nextParam}, status: 200, reply: htmlPage, limited: true},
		{origin: x, method: "POST", path: "/_gnome/auth/login", tag: "Experiment accounts", summary: "Sign in to the experiment's own account", auth: anyone, body: jsonBodyOf("Credentials"), status: 200, reply: jsonReply("ExpUser", "a form gets 303"), limited: true, errs: []apierr.Code{apierr.CodeInvalidCredentials}},
		{origin: x, method: "GET", path: "/_gnome/auth/register", tag: "Experiment accounts", summary: "The experiment's sign-up page (when it allows registration)", auth: anyone, status: 200, reply: htmlPage, limited: true},
		{origin: x, method: "POST", path: "/_gnome/auth/register", tag: "Experiment accounts", summary: "Create an account of the experiment", auth: anyone, body: jsonBodyOf("Credentials"), status: 201, reply: jsonReply("ExpUser", ""), limited: true, errs: []apierr.Code{apierr.CodeConflict}},
		{origin: x, method: "POST", path: "/_gnome/auth/demo", tag: "Experiment accounts", summary: "Enter as the experiment's demo account (when it has one)", auth: anyone, status: 200, reply: jsonReply("ExpUser", ""), limited: true},
		{origin: x, method: "POST", path: "/_gnome/auth/logout", tag: "Experiment accounts", summary: "Sign out of the experiment's account", who: "anyone (ends the visitor's session, if any)", auth: accessRules, status: 200, reply: jsonReply("", "done; a form gets 303")},
		{origin: x, method: "GET", path: "/_gnome/auth/me", tag: "Experiment accounts", summary: "Who the visitor is to this experiment", auth: accessRules, status: 200, reply: jsonReply("", "kind, id, email, roles")},
		{origin: x, method: "GET", path: "/_gnome/l/:id", tag: "Experiment origin", summary: "Open a study link: begins or continues a run", auth: anyone, status: 303, reply: redirect, limited: true, errs: []apierr.Code{apierr.CodeGone}},
		{origin: x, method: "GET", path: "/experiments/:slug/health", tag: "Experiment origin", summary: "The actor's state: starting, running, restarting, failed, none", auth: accessRules, status: 200, reply: jsonReply("", "the actor's state")},
		{origin: x, method: anyMethod, path: "/experiments/:slug/api/*", tag: "Experiment origin", summary: "Handled by the experiment's actor", auth: accessRules, status: 200, reply: apiPayload{"application/json", "", "what the actor answers (any status and type)"}, errs: []apierr.Code{apierr.CodeTimeout, apierr.CodeUnavailable}},
		{origin: x, method: "GET", path: "/experiments/:slug/ws", tag: "Experiment origin", summary: "A WebSocket to the actor (live channels)", auth: accessRules, status: 101, reply: apiPayload{"", "", "switching protocols"}, errs: []apierr.Code{apierr.CodeLiveTooMany}},
		{origin: x, method: "GET", path: "/experiments/:slug/ws/*", tag: "Experiment origin", summary: "A WebSocket to the actor, with a path it sees", auth: accessRules, status: 101, reply: apiPayload{"", "", "switching protocols"}, errs: []apierr.Code{apierr.CodeLiveTooMany}},
		{origin: x, method: "GET", path: "/experiments/:slug/events/:room", tag: "Experiment origin", summary: "A room's messages as server-sent events", auth: accessRules, status: 200, reply: apiPayload{"text/event-stream", "", "the room's messages"}, errs: []apierr.Code{apierr.CodeLiveTooMany}},
		{origin: x, method: "GET", path: "/experiments/:slug", tag: "Experiment origin", summary: "On the experiment's origin: 301 to /experiments/{slug}/", auth: anyone, status: 301, reply: redirect},
		{origin: x, method: "GET", path: "/experiments/:slug/*", tag: "Experiment origin", summary: "On the experiment's origin: the bundle's static files, with ETag and conditional GET", auth: accessRules, status: 200, reply: apiPayload{"*/*", "", "the file"}},
	}...)
	return rs
}

// apiSchemas are the document's components.schemas besides Error and
// Manifest: short shapes, each naming the repository's JSON Schema of the
// same message where one exists (schemas/messages), which holds every field.
var apiSchemas = map[string][2]string{
	"Health":           {"", `{"type":"object","required":["status"],"properties":{"status":{"type":"string","enum":["ok","unavailable"]}}}`},
	"PasswordChange":   {"auth-password-change.json", `{"type":"object","required":["current_password","new_password"],"properties":{"current_password":{"type":"string"},"new_password":{"type":"string"}}}`},
	"Credentials":      {"auth-credentials.json", `{"type":"object","required":["email","password"],"properties":{"email":{"type":"string","format":"email"},"password":{"type":"string"},"next":{"type":"string"}}}`},
	"SignedIn":         {"auth-session.json", `{"type":"object","properties":{"user":{"$ref":"#/components/schemas/User"}}}`},
	"User":             {"auth-user.json", `{"type":"object","properties":{"email":{"type":"string","format":"email"},"roles":{"type":"array","items":{"type":"string"}}}}`},
	"Users":            {"auth-users.json", `{"type":"object"}`},
	"CreateUser":       {"auth-create-user.json", `{"type":"object","required":["email","password"]}`},
	"UpdateUser":       {"auth-update-user.json", `{"type":"object"}`},
	"Tokens":           {"", `{"type":"object","properties":{"tokens":{"type":"array","items":{"type":"object","properties":{"id":{"type":"string"},"name":{"type":"string"},"roles":{"type":"array","items":{"type":"string"}},"created_at":{"type":"string","format":"date-time"},"expires_at":{"type":["string","null"],"format":"date-time"},"last_used_at":{"type":["string","null"],"format":"date-time","description":"recorded at most about once a minute"}}}}}}`},
	"TokenCreate":      {"", `{"type":"object","required":["name"],"properties":{"name":{"type":"string","minLength":1,"maxLength":100},"roles":{"type":"array","items":{"type":"string"},"description":"roles you hold; default: all of them"},"expires_in_days":{"type":"integer","minimum":1,"maximum":3650,"description":"default: no expiry"}}}`},
	"TokenCreated":     {"", `{"type":"object","properties":{"token":{"type":"string","description":"gnome_pat_…: send it as Authorization: Bearer; shown only this once"},"id":{"type":"string"},"name":{"type":"string"},"roles":{"type":"array","items":{"type":"string"}},"created_at":{"type":"string","format":"date-time"},"expires_at":{"type":["string","null"],"format":"date-time"}}}`},
	"AuditPage":        {"auth-audit-page.json", `{"type":"object","required":["entries"],"properties":{"entries":{"type":"array","items":{"type":"object","properties":{"id":{"type":"string"},"when":{"type":"string","format":"date-time"},"who":{"type":"string"},"what":{"type":"string"},"target":{"type":"string"},"request_id":{"type":"string"},"details":{"type":"object"}}}},"next":{"type":"string","description":"the cursor of the next page; absent on the last"}}}`},
	"ExpUsers":         {"auth-exp-users.json", `{"type":"object"}`},
	"ExpUser":          {"auth-exp-user.json", `{"type":"object"}`},
	"ExpUserUpdate":    {"", `{"type":"object","properties":{"disabled":{"type":"boolean"}}}`},
	"Links":            {"auth-links.json", `{"type":"object"}`},
	"LinksCreate":      {"auth-links-create.json", `{"type":"object"}`},
	"Runs":             {"auth-runs.json", `{"type":"object"}`},
	"Permissions":      {"auth-perms.json", `{"type":"object"}`},
	"PermissionGrant":  {"auth-perms-grant.json", `{"type":"object"}`},
	"Experiments":      {"", `{"type":"object","properties":{"experiments":{"type":"array","items":{"$ref":"#/components/schemas/Experiment"}}}}`},
	"ExperimentChange": {"", `{"type":"object","properties":{"experiment":{"$ref":"#/components/schemas/Experiment"},"warnings":{"type":"array","items":{"type":"object","properties":{"field":{"type":"string"},"message":{"type":"string"}}}},"created":{"type":"boolean","description":"false when the upload made no new experiment"},"unchanged":{"type":"boolean","description":"true (answer 200) when the upload was the current version's very bundle: no version was made"},"message":{"type":"string","description":"the outcome in words, with unchanged"}}}`},
	"Experiment":       {"", `{"type":"object","description":"The experiment as the catalogue has it: slug, manifest (see Manifest), owner, version, checksum, status, actor and index state.","properties":{"manifest":{"$ref":"#/components/schemas/Manifest"},"owner_email":{"type":"string"},"url":{"type":"string","description":"its page, on its own origin"},"actor":{"type":"object","properties":{"state":{"type":"string"},"last_error":{"type":"string"}}}}}`},
	"ExperimentPatch":  {"upload-update.json", `{"type":"object","description":"status, or fields of Manifest to change"}`},
	"DeleteConfirm":    {"", `{"type":"object","required":["confirm"],"properties":{"confirm":{"type":"string","description":"the experiment's slug, typed again"}}}`},
	"Grants":           {"upload-grants-reply.json", `{"type":"object"}`},
	"GrantRequest":     {"upload-grant.json", `{"type":"object"}`},
	"Secrets":          {"upload-secrets-reply.json", `{"type":"object"}`},
	"Versions":         {"upload-versions-reply.json", `{"type":"object"}`},
	"ActorLogs":        {"", `{"type":"object","properties":{"slug":{"type":"string"},"lines":{"type":"array","items":{"type":"object","description":"actor-log-line.json with its seq in the stream","properties":{"seq":{"type":"integer"},"time":{"type":"string","format":"date-time"},"level":{"type":"string","enum":["debug","info","warn","error"]},"message":{"type":"string"},"stream":{"type":"string","enum":["log","stdout","stderr","platform"]},"instance":{"type":"integer"},"version":{"type":"integer"},"request_id":{"type":"string"},"cut":{"type":"boolean"}}}},"truncated":{"type":"boolean","description":"older lines since the time asked were left out by limit"}}}`},
	"Rollback":         {"", `{"type":"object","required":["version"],"properties":{"version":{"type":"integer","minimum":1,"description":"a kept version's number"}}}`},
	"RollbackResult":   {"", `{"type":"object","properties":{"experiment":{"$ref":"#/components/schemas/Experiment"},"from":{"type":"integer","description":"the version current before"},"changed":{"type":"boolean","description":"false when the version was current already: nothing changed"},"warnings":{"type":"array","items":{"type":"object","properties":{"field":{"type":"string"},"message":{"type":"string"}}}}}}`},
	"SecretValue":      {"", `{"type":"object","required":["value"],"properties":{"value":{"type":"string","writeOnly":true}}}`},
	"ExportRequest":    {"export-request.json", `{"type":"object","required":["type"],"properties":{"type":{"type":"string","enum":%TYPES%}}}`},
	"ExportLog":        {"export-log.json", `{"type":"object"}`},
	"ExportLogs":       {"export-listed.json", `{"type":"object"}`},
	"DataCollections":  {"export-data-collections.json", `{"type":"object"}`},
	"DataStats":        {"export-data-stats.json", `{"type":"object"}`},
	"DataRequest":      {"", `{"type":"object","required":["collection"],"properties":{"collection":{"type":"string","pattern":"^[A-Za-z0-9_]{1,64}$","description":"a collection's name, as GET /api/experiments/{slug}/data lists it"},"format":{"type":"string","enum":["csv","jsonl"],"default":"csv"},"from":{"type":"string","format":"date-time","description":"only documents created at or after it (an ObjectId _id's time, else created_at)"},"to":{"type":"string","format":"date-time","description":"only documents created before it"}}}`},
}

// openAPIPath is a Fiber route path in OpenAPI's syntax: ":name" is
// "{name}" and the wildcard "*" is "{path}".
func openAPIPath(fiberPath string) string {
	segs := strings.Split(fiberPath, "/")
	for i, s := range segs {
		switch {
		case strings.HasPrefix(s, ":"):
			segs[i] = "{" + s[1:] + "}"
		case s == "*":
			segs[i] = "{path}"
		}
	}
	return strings.Join(segs, "/")
}

// pathParams are the names of a path's parameters, in order.
func pathParams(path string) []string {
	var out []string
	for _, s := range strings.Split(openAPIPath(path), "/") {
		if strings.HasPrefix(s, "{") {
			out = append(out, strings.Trim(s, "{}"))
		}
	}
	return out
}

// errorsOf are the catalogue codes a route may answer beyond the default:
// those its access, path, body, method and limits imply, and its own.
func (r apiRoute) errorsOf(method string) []apierr.Code {
	var cs []apierr.Code
	switch r.auth {
	case signedIn:
		cs = append(cs, apierr.CodeUnauthenticated, apierr.CodeTokenRevoked, apierr.CodeForbidden)
	case adminOnly:
		cs = append(cs, apierr.CodeUnauthenticated, apierr.CodeTokenRevoked, apierr.CodeForbidden)
	case accessRules:
		cs = append(cs, apierr.CodeForbidden)
	}
	if len(pathParams(r.path)) > 0 || r.origin == onExperiment {
		cs = append(cs, apierr.CodeNotFound)
	}
	if method != "GET" {
		// Unsafe methods pass the CSRF check (identity.go) on both origins.
		cs = append(cs, apierr.CodeCsrfRejected)
	}
	if r.body != nil {
		cs = append(cs, apierr.CodePayloadTooLarge)
		if r.body.media == "application/json" {
			cs = append(cs, apierr.CodeUnsupportedMediaType, apierr.CodeInvalidJson, apierr.CodeValidationFailed)
		}
	}
	if r.limited {
		cs = append(cs, apierr.CodeRateLimited)
	}
	cs = append(cs, r.errs...)
	slices.SortFunc(cs, func(a, b apierr.Code) int {
		if d := a.Status() - b.Status(); d != 0 {
			return d
		}
		return strings.Compare(string(a), string(b))
	})
	return slices.Compact(cs)
}

// docOperation is one operation of the document, as both the JSON and the
// page show it: routes of both origins with the same method and path are
// one operation.
type docOperation struct {
	Method, Path, Tag, Summary, Who string
	Origins                         []string
	Params                          []string
	Errors                          []apierr.Code
	routes                          []apiRoute
}

// apiDocs is the API description built once at start: the JSON document
// and the operations the page lists.
type apiDocs struct {
	json []byte
	etag string
	ops  []docOperation
	tags []string
}

// newAPIDocs builds the description for the edge's origins.
func newAPIDocs(o *origins, registration bool) *apiDocs {
	d, err := buildAPIDocs(o.platform, o.experiment("{slug}"), registration)
	if err != nil {
		panic(err) // the document is built from constants: a failure is a bug the tests catch
	}
	return d
}

func buildAPIDocs(platform, experimentTemplate string, registration bool) (*apiDocs, error) {
	d := &apiDocs{}
	byKey := map[string]int{}
	for _, r := range apiRoutes(registration) {
		methods := []string{r.method}
		if r.method == anyMethod {
			methods = anyMethods
		}
		for _, m := range methods {
			key := m + " " + openAPIPath(r.path)
			i, ok := byKey[key]
			if !ok {
				i = len(d.ops)
				byKey[key] = i
				d.ops = append(d.ops, docOperation{Method: m, Path: openAPIPath(r.path), Tag: r.tag})
			}
			op := &d.ops[i]
			op.routes = append(op.routes, r)
			op.Origins = append(op.Origins, r.origin)
		}
	}
	for i := range d.ops {
		op := &d.ops[i]
		var sums, whos []string
		for _, r := range op.routes {
			sums = append(sums, r.summary)
			who := r.who
			if who == "" {
				who = r.auth.String()
			}
			if len(op.routes) > 1 {
				who = originName(r.origin) + ": " + who
			}
			whos = append(whos, who)
			op.Errors = append(op.Errors, r.errorsOf(op.Method)...)
		}
		op.Summary, op.Who = strings.Join(sums, " · "), strings.Join(whos, "; ")
		slices.SortFunc(op.Errors, func(a, b apierr.Code) int {
			if d := a.Status() - b.Status(); d != 0 {
				return d
			}
			return strings.Compare(string(a), string(b))
		})
		op.Errors = slices.Compact(op.Errors)
		op.Params = pathParams(op.routes[0].path)
		for _, q := range op.routes[0].query {
			op.Params = append(op.Params, q.name+" (query)")
		}
		if !slices.Contains(d.tags, op.Tag) {
			d.tags = append(d.tags, op.Tag)
		}
	}
	doc, err := d.document(platform, experimentTemplate)
	if err != nil {
		return nil, err
	}
	if d.json, err = json.Marshal(doc); err != nil {
		return nil, fmt.Errorf("encode the API description: %w", err)
	}
	sum := sha256.Sum256(d.json)
	d.etag = `"` + hex.EncodeToString(sum[:16]) + `"`
	return d, nil
}

func originName(o string) string {
	if o == onExperiment {
		return "experiment origin"
	}
	return "platform"
}

type obj = map[string]any

func (d *apiDocs) document(platform, experimentTemplate string) (obj, error) {
	platformServer := obj{"url": platform, "description": "the platform's origin"}
	expServer := obj{"url": experimentTemplate, "description": "an experiment's own origin (EXPERIMENT_ORIGIN)",
		"variables": obj{"slug": obj{"default": "my-experiment", "description": "the experiment's slug"}}}
	paths := obj{}
	for _, op := range d.ops {
		item, _ := paths[op.Path].(obj)
		if item == nil {
			item = obj{}
			paths[op.Path] = item
		}
		item[strings.ToLower(op.Method)] = d.operation(op, platformServer, expServer)
	}
	schemas, err := componentSchemas()
	if err != nil {
		return nil, err
	}
	var tags []obj
	for _, t := range d.tags {
		tags = append(tags, obj{"name": t})
	}
	return obj{
		"openapi": "3.1.0",
		"info": obj{
			"title":   "g.nome HTTP API",
			"version": "1",
			"description": "Every route the edge serves, on the platform's origin and on the experiments' origins " +
				"(x-origins names where). Errors are JSON in the shape of components.schemas.Error; its code is one " +
				"of the catalogue (schemas/errors.json), whose status and description each code lists. Platform routes " +
				"answer 404 on experiment origins. A readable page of this document: /api/docs.",
		},
		"jsonSchemaDialect": "https://spec.openapis.org/oas/3.1/dialect/base",
		"servers":           []obj{platformServer},
		"tags":              tags,
		"paths":             paths,
		"components": obj{
			"schemas": schemas,
			"securitySchemes": obj{
				"sessionCookie": obj{"type": "apiKey", "in": "cookie", "name": authn.CookieName,
					"description": "The platform's session cookie, set by POST /auth/login (named __Host-" + authn.CookieName + " in production). Unsafe methods also need the CSRF token of the page's form or header."},
				"bearerToken": obj{"type": "http", "scheme": "bearer",
					"description": "A platform token sent as Authorization: Bearer, for scripts; also accepted on experiment origins."},
				"experimentSession": obj{"type": "apiKey", "in": "cookie", "name": "gnome_session",
					"description": "An experiment origin's session cookie, set by the identity hand-off or the experiment's own sign-in (an experiment may name it with sub_auth.session_cookie_name)."},
			},
		},
	}, nil
}

func (d *apiDocs) operation(op docOperation, platformServer, expServer obj) obj {
	r := op.routes[0]
	var descs []string
	for _, rr := range op.routes {
		who := rr.who
		if who == "" {
			who = rr.auth.String()
		}
		descs = append(descs, fmt.Sprintf("%s — who: %s.", rr.summary, who))
	}
	o := obj{
		"operationId": operationID(op.Method, op.Path),
		"summary":     op.Summary,
		"description": strings.Join(descs, "\n\n"),
		"tags":        []string{op.Tag},
		"x-origins":   op.Origins,
	}
	if !slices.Equal(op.Origins, []string{onPlatform}) {
		var servers []obj
		for _, or := range op.Origins {
			if or == onExperiment {
				servers = append(servers, expServer)
			} else {
				servers = append(servers, platformServer)
			}
		}
		o["servers"] = servers
	}
	// Who may call: the loosest of the origins' rules.
	var sec []obj
	auth := r.auth
	for _, rr := range op.routes {
		if rr.auth != auth {
			// One origin's route needs nothing, the other's may use
			// credentials: they are optional.
			auth = accessRules
		}
	}
	schemes := []obj{{"sessionCookie": []string{}}, {"bearerToken": []string{}}}
	if slices.Contains(op.Origins, onExperiment) {
		schemes = append(schemes, obj{"experimentSession": []string{}})
	}
	switch auth {
	case anyone:
		sec = []obj{{}}
	case accessRules:
		sec = append([]obj{{}}, schemes...)
	default:
		sec = schemes
	}
	o["security"] = sec
	var params []obj
	for _, p := range pathParams(r.path) {
		desc := "the " + p
		if p == "path" {
			desc = "the rest of the path (may hold slashes)"
		}
		params = append(params, obj{"name": p, "in": "path", "required": true, "description": desc, "schema": obj{"type": "string"}})
	}
	for _, q := range r.query {
		params = append(params, obj{"name": q.name, "in": "query", "required": q.required, "description": q.desc, "schema": obj{"type": "string"}})
	}
	if params != nil {
		o["parameters"] = params
	}
	if r.body != nil && op.Method != "GET" {
		media := obj{}
		if r.body.schema != "" {
			media["schema"] = obj{"$ref": "#/components/schemas/" + r.body.schema}
		}
		rb := obj{"required": true, "content": obj{r.body.media: media}}
		if r.body.desc != "" {
			rb["description"] = r.body.desc
		}
		o["requestBody"] = rb
	}
	responses := obj{}
	for _, rr := range op.routes {
		desc := rr.reply.desc
		if desc == "" {
			desc = successText(rr.status)
		}
		resp := obj{"description": desc}
		if rr.reply.media != "" {
			media := obj{}
			if rr.reply.schema != "" {
				media["schema"] = obj{"$ref": "#/components/schemas/" + rr.reply.schema}
			}
			resp["content"] = obj{rr.reply.media: media}
		}
		if _, ok := responses[strconv.Itoa(rr.status)]; !ok {
			responses[strconv.Itoa(rr.status)] = resp
		}
	}
	byStatus := map[int][]apierr.Code{}
	for _, c := range op.Errors {
		byStatus[c.Status()] = append(byStatus[c.Status()], c)
	}
	errContent := obj{"application/json": obj{"schema": obj{"$ref": "#/components/schemas/Error"}}}
	for status, codes := range byStatus {
		var lines []string
		for _, c := range codes {
			lines = append(lines, "`"+string(c)+"`: "+c.Description())
		}
		responses[strconv.Itoa(status)] = obj{"description": strings.Join(lines, "\n\n"), "content": errContent, "x-error-codes": codes}
	}
	responses["default"] = obj{"description": "Any other error of the catalogue (internal, unavailable, timeout, ...).", "content": errContent}
	o["responses"] = responses
	return o
}

func successText(status int) string {
	switch status {
	case 101:
		return "switching protocols"
	case 204:
		return "no content"
	case 301, 302, 303, 308:
		return "a redirect"
	}
	return "success"
}

// operationID is unique per method and path.
func operationID(method, path string) string {
	id := strings.ToLower(method)
	for _, s := range strings.Split(path, "/") {
		s = strings.Trim(s, "{}")
		s = strings.NewReplacer("-", "_", ".", "_").Replace(s)
		if s != "" {
			id += "_" + s
		}
	}
	if path == "/" {
		id += "_root"
	}
	return id
}

// componentSchemas are the Error schema (the whole catalogue), the
// manifest's JSON Schema as experiment authors get it, and apiSchemas.
func componentSchemas() (obj, error) {
	var codes []string
	var catalogue []obj
	for _, c := range apierr.Codes() {
		codes = append(codes, string(c))
		catalogue = append(catalogue, obj{"code": c, "status": c.Status(), "description": c.Description()})
	}
	out := obj{
		"Error": obj{
			"type":        "object",
			"description": "The platform's error shape (schemas/errors.json is the catalogue of codes; x-error-catalogue gives each code's HTTP status and meaning).",
			"required":    []string{"error"},
			"properties": obj{"error": obj{
				"type":     "object",
				"required": []string{"code", "message"},
				"properties": obj{
					"code":       obj{"type": "string", "enum": codes},
					"message":    obj{"type": "string", "description": "what went wrong, readable"},
					"field":      obj{"type": "string", "description": "the JSON pointer of the offending input, when there is one"},
					"request_id": obj{"type": "string", "description": "the request's X-Request-ID"},
				},
			}},
			"x-error-catalogue": catalogue,
		},
		"Manifest": json.RawMessage(bundle.ManifestSchema()),
	}
	types, _ := json.Marshal(exportapi.Types)
	for name, s := range apiSchemas {
		var m obj
		if err := json.Unmarshal([]byte(strings.ReplaceAll(s[1], "%TYPES%", string(types))), &m); err != nil {
			return nil, fmt.Errorf("schema %s: %w", name, err)
		}
		if s[0] != "" {
			note := "JSON Schema of every field: schemas/messages/" + s[0] + " in the repository."
			if d, ok := m["description"].(string); ok {
				note = d + " " + note
			}
			m["description"] = note
		}
		out[name] = m
	}
	return out, nil
}

//go:embed pages/apidocs.html
var apiDocsHTML string

var apiDocsPage = template.Must(template.New("apidocs").Funcs(template.FuncMap{
	"lower":  strings.ToLower,
	"anchor": func(s string) string { return strings.ReplaceAll(strings.ToLower(s), " ", "-") },
}).Parse(apiDocsHTML))

func (d *apiDocs) routes(app *fiber.App) {
	app.Get("/api/openapi.json", d.serveJSON)
	app.Get("/api/docs", d.servePage)
}

// serveJSON answers the document to anyone; it changes only with a new
// release, so caches may keep it a while and revalidate by ETag.
func (d *apiDocs) serveJSON(c *fiber.Ctx) error {
	c.Set(fiber.HeaderCacheControl, "public, max-age=300")
	c.Set(fiber.HeaderETag, d.etag)
	// Compression weakens the ETag (W/"..."), which a client then sends
	// back; the document is the same either way.
	for _, tag := range strings.Split(c.Get(fiber.HeaderIfNoneMatch), ",") {
		if tag = strings.TrimPrefix(strings.TrimSpace(tag), "W/"); tag == d.etag || tag == "*" {
			return c.SendStatus(fiber.StatusNotModified)
		}
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
	return c.Send(d.json)
}

// apiDocsTag is one group of the page.
type apiDocsTag struct {
	Name string
	Ops  []docOperation
}

func (d *apiDocs) servePage(c *fiber.Ctx) error {
	var groups []apiDocsTag
	for _, t := range d.tags {
		g := apiDocsTag{Name: t}
		for _, op := range d.ops {
			if op.Tag == t {
				g.Ops = append(g.Ops, collapse(op))
			}
		}
		// ANY routes were expanded per method; the page shows them once.
		g.Ops = slices.CompactFunc(g.Ops, func(a, b docOperation) bool {
			return a.Method == anyMethod && b.Method == anyMethod && a.Path == b.Path
		})
		groups = append(groups, g)
	}
	var catalogue []obj
	for _, code := range apierr.Codes() {
		catalogue = append(catalogue, obj{"Code": string(code), "Status": code.Status(), "Description": code.Description()})
	}
	var buf bytes.Buffer
	if err := apiDocsPage.Execute(&buf, obj{"Nonce": httpx.CSPNonce(c), "Groups": groups, "Errors": catalogue}); err != nil {
		return fmt.Errorf("render the API page: %w", err)
	}
	c.Set(fiber.HeaderCacheControl, "no-cache")
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Send(buf.Bytes())
}

// collapse shows an operation of a route registered for every method as
// ANY when none of its origins registers that path by method.
func collapse(op docOperation) docOperation {
	for _, r := range op.routes {
		if r.method != anyMethod {
			return op
		}
	}
	op.Method = anyMethod
	return op
}

// ExperimentApp is the experiment origins' Fiber application, for
// in-process tests (the route walk of the API description).
func (s *Service) ExperimentApp() *fiber.App { return s.expApp }
