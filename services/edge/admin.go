package edge

import (
	"context"
	"fmt"
	"html/template"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authapi"
	"github.com/gnome-platform/gnome/libs/authz"
)

// The admin console: pages for every experiment, users and roles, the
// audit log, exports and live health (pages/admin*.html, each with the
// shared sub-navigation of admin-nav.html), and the JSON routes their
// scripts call. Filters are query parameters read on the server, so every
// list works without script too.

// adminAPI is the administration of users and roles, and the admin pages.
type adminAPI struct {
	auth    authapi.Client
	id      *identity
	pages   *renderer
	exports *exportsAPI
	catalog *catalog
}

// adminPageNames are the console's pages, each pages/<name>.html.
var adminPageNames = []string{"admin", "admin-users", "admin-audit", "admin-exports", "admin-health"}

func init() {
	for _, name := range adminPageNames {
		pageTemplates[name] = template.Must(template.New(name).Funcs(template.FuncMap{"bytes": byteSize}).ParseFS(pageFS, "pages/layout.html", "pages/admin-nav.html", "pages/"+name+".html"))
	}
}

// exportCountWindow is how many recent exports the experiments page counts
// per experiment: one bus call, whatever the number of experiments.
const exportCountWindow = 1000

func (a *adminAPI) routes(app *fiber.App) {
	app.Get("/admin", a.id.requireAdmin, a.experimentsPage)
	app.Get("/admin/users", a.id.requireAdmin, a.usersPage)
	app.Get("/admin/audit", a.id.requireAdmin, a.auditPage)
	app.Get("/admin/exports", a.id.requireAdmin, a.exportsPage)
	app.Get("/admin/health", a.id.requireAdmin, a.healthPage)
	app.Get("/admin/api/audit", a.id.requireAdmin, a.listAudit)
	app.Get("/admin/api/users", a.id.requireAdmin, a.listUsers)
	app.Post("/admin/api/users", a.id.requireAdmin, a.createUser)
	app.Patch("/admin/api/users/:email", a.id.requireAdmin, a.updateUser)
	app.Post("/admin/api/users/:email/roles/:role", a.id.requireAdmin, a.roleChange(a.auth.GrantRole))
	app.Delete("/admin/api/users/:email/roles/:role", a.id.requireAdmin, a.roleChange(a.auth.RevokeRole))
}

// adminView is what the console's pages show; each fills its part.
type adminView struct {
	page
	// Tab is the page's name, for the sub-navigation.
	Tab string

	// The experiments page: its filters, the owners and statuses they
	// offer, and the rows they select out of Total.
	Q, Owner, Status string
	Owners           []string
	Rows             []adminExperiment
	Total            int
	// CountsNote says when the export counts are partial or missing.
	CountsNote string

	// The users page: the roles one may grant.
	Roles []string

	// The audit page.
	Audit      []auditRow
	AuditQuery auditFilter
	OlderURL   string
	Filtered   bool

	// The exports page's slug filter and the slugs it offers.
	Slug  string
	Slugs []string
}

// adminExperiment is a row of the experiments page.
type adminExperiment struct {
	Slug, Name, Description, Status, Owner string
	Version                                int
	Exports                                string
	Updated                                string
	UpdatedAt                              time.Time
}

func (a *adminAPI) render(c *fiber.Ctx, v *adminView) error {
	v.Title = "Administration"
	return a.pages.renderView(c, fiber.StatusOK, v.Tab, &v.page, v)
}

// experimentsPage lists every experiment, filtered by a search of name,
// slug and description, by owner and by status.
func (a *adminAPI) experimentsPage(c *fiber.Ctx) error {
	v := &adminView{Tab: "admin", Q: strings.TrimSpace(c.Query("q")), Owner: strings.TrimSpace(c.Query("owner")),
		Status: strings.TrimSpace(c.Query("status"))}
	v.Statuses = myStatuses
	if v.Status != "" && !slices.Contains(myStatuses, v.Status) {
		v.Error = fmt.Sprintf("There is no status “%s”: choose one of %s.", v.Status, strings.Join(myStatuses, ", "))
	}
	counts, partial, err := a.exportCounts(c)
	switch {
	case err != nil:
		v.CountsNote = fmt.Sprintf("Export counts are unavailable right now (%s).", apierr.From(err).Code)
	case partial:
		v.CountsNote = fmt.Sprintf("Export counts cover the %d most recent exports.", exportCountWindow)
	}
	q := strings.ToLower(v.Q)
	owners := map[string]bool{}
	now := time.Now()
	all := a.catalog.list()
	v.Total = len(all)
	for _, e := range all {
		cfg := e.cfg
		owner := strings.ToLower(cfg.OwnerEmail)
		if owner != "" {
			owners[owner] = true
		}
		if v.Owner != "" && owner != strings.ToLower(v.Owner) {
			continue
		}
		if v.Status != "" && cfg.Status != v.Status {
			continue
		}
		// Plain substring search: what is typed is text, never a pattern.
		if q != "" && !strings.Contains(strings.ToLower(cfg.Name), q) && !strings.Contains(cfg.Slug, q) &&
			!strings.Contains(strings.ToLower(cfg.Description), q) {
			continue
		}
		row := adminExperiment{Slug: cfg.Slug, Name: cfg.Name, Description: cfg.Description, Status: cfg.Status,
			Owner: cfg.OwnerEmail, Version: cfg.Version, Updated: timeAgo(cfg.UpdatedAt, now), UpdatedAt: cfg.UpdatedAt}
		if err == nil {
			row.Exports = strconv.Itoa(counts[cfg.Slug])
		}
		v.Rows = append(v.Rows, row)
	}
	for o := range owners {
		v.Owners = append(v.Owners, o)
	}
	slices.Sort(v.Owners)
	return a.render(c, v)
}

// exportCounts counts the recent exports of each experiment; partial is
// true when there are more exports than the window.
func (a *adminAPI) exportCounts(c *fiber.Ctx) (map[string]int, bool, error) {
	list, err := a.exports.logs(c, "", exportCountWindow)
	if err != nil {
		return nil, false, err
	}
	out := map[string]int{}
	for _, l := range list {
		out[l.Slug]++
	}
	return out, len(list) >= exportCountWindow, nil
}

func (a *adminAPI) usersPage(c *fiber.Ctx) error {
	v := &adminView{Tab: "admin-users", Roles: []string{authz.RoleAdmin, authz.RoleDeveloper, authz.RoleUser}}
	list, err := a.auth.Users(c.UserContext(), actorOf(c))
	if err != nil {
		return err
	}
	v.Users = list.Users
	slices.SortFunc(v.Users, func(x, y authapi.User) int { return strings.Compare(x.Email, y.Email) })
	return a.render(c, v)
}

func (a *adminAPI) exportsPage(c *fiber.Ctx) error {
	v := &adminView{Tab: "admin-exports", Slug: strings.TrimSpace(c.Query("slug"))}
	for _, e := range a.catalog.list() {
		v.Slugs = append(v.Slugs, e.cfg.Slug)
	}
	list, err := a.exports.logs(c, v.Slug, 100)
	if err != nil {
		v.ExportsError = fmt.Sprintf("Exports are unavailable right now (%s).", apierr.From(err).Code)
	}
	v.Exports = viewsOfExports(list, time.Now())
	return a.render(c, v)
}

func (a *adminAPI) healthPage(c *fiber.Ctx) error {
	return a.render(c, &adminView{Tab: "admin-health"})
}

// auditFilter is the audit log's filters as the page's form and the
// route's query name them.
type auditFilter struct {
	Who, What, Target, Since, Until string
}

// auditRow is an audit entry as the page shows it.
type auditRow struct {
	authapi.AuditEntry
	Ago     string
	Details string
}

// auditQuery reads the audit filters of a request. Dates are a day
// (2025-06-01, until includes that whole day, in UTC) or an RFC 3339 time.
func auditQuery(c *fiber.Ctx) (authapi.AuditList, auditFilter, error) {
	f := auditFilter{Who: c.Query("who"), What: c.Query("what"), Target: c.Query("target"), Since: c.Query("since"), Until: c.Query("until")}
	q := authapi.AuditList{Actor: actorOf(c), Who: f.Who, What: f.What, Target: f.Target, Cursor: c.Query("cursor")}
	for _, t := range []struct {
		raw   string
		field string
		end   bool
		into  **time.Time
	}{{f.Since, "since", false, &q.Since}, {f.Until, "until", true, &q.Until}} {
		if t.raw == "" {
			continue
		}
		at, err := parseWhen(t.raw, t.end)
		if err != nil {
			return q, f, apierr.New(apierr.CodeValidationFailed, "%s must be a date (2025-06-01) or an RFC 3339 time", t.field).OnField("/" + t.field)
		}
		*t.into = &at
	}
	if s := c.Query("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > authapi.AuditLimitMax {
			return q, f, apierr.New(apierr.CodeValidationFailed, "limit must be a number from 1 to %d", authapi.AuditLimitMax).OnField("/limit")
		}
		q.Limit = n
	}
	return q, f, nil
}

// parseWhen reads a day or a time; a day that ends a range means the
// start of the day after it.
func parseWhen(s string, end bool) (time.Time, error) {
	if d, err := time.Parse(time.DateOnly, s); err == nil {
		if end {
			d = d.AddDate(0, 0, 1)
		}
		return d, nil
	}
	return time.Parse(time.RFC3339, s)
}

// listAudit is GET /admin/api/audit: a page of the audit log.
func (a *adminAPI) listAudit(c *fiber.Ctx) error {
	q, _, err := auditQuery(c)
	if err != nil {
		return err
	}
	p, err := a.auth.Audit(c.UserContext(), q)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(p)
}

func (a *adminAPI) auditPage(c *fiber.Ctx) error {
	v := &adminView{Tab: "admin-audit"}
	q, f, err := auditQuery(c)
	v.AuditQuery = f
	v.Filtered = f != (auditFilter{})
	if err != nil {
		v.Error = apierr.From(err).Message
		return a.render(c, v)
	}
	p, err := a.auth.Audit(c.UserContext(), q)
	if err != nil {
		ae := apierr.From(err)
		if ae.Code != apierr.CodeValidationFailed {
			return err
		}
		v.Error = ae.Message
		return a.render(c, v)
	}
	now := time.Now()
	for _, e := range p.Entries {
		row := auditRow{AuditEntry: e, Ago: timeAgo(e.When, now)}
		if len(e.Details) > 0 {
			row.Details = detailsText(e.Details)
		}
		v.Audit = append(v.Audit, row)
	}
	if p.Next != "" {
		next := c.Request().URI().QueryArgs()
		vals := url.Values{}
		next.VisitAll(func(k, val []byte) { vals.Set(string(k), string(val)) })
		vals.Set("cursor", p.Next)
		v.OlderURL = "/admin/audit?" + vals.Encode()
	}
	return a.render(c, v)
}

// detailsText is an entry's details as one readable line: key=value, in
// key order.
func detailsText(d map[string]any) string {
	keys := make([]string, 0, len(d))
	for k := range d {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		val := d[k]
		if list, ok := val.([]any); ok {
			s := make([]string, len(list))
			for i, x := range list {
				s[i] = fmt.Sprint(x)
			}
			val = strings.Join(s, ", ")
		}
		parts = append(parts, fmt.Sprintf("%s: %v", k, val))
	}
	return strings.Join(parts, "; ")
}

func (a *adminAPI) listUsers(c *fiber.Ctx) error {
	list, err := a.auth.Users(c.UserContext(), actorOf(c))
	if err != nil {
		return err
	}
	return c.JSON(list)
}

func (a *adminAPI) createUser(c *fiber.Ctx) error {
	var req struct {
		Email    string   `json:"email"`
		Password string   `json:"password"`
		Roles    []string `json:"roles"`
	}
	if err := jsonBody(c, &req); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), hashCallTimeout)
	defer cancel()
	u, err := a.auth.CreateUser(ctx, authapi.CreateUser{Actor: actorOf(c), Email: req.Email, Password: req.Password, Roles: req.Roles})
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(u)
}

func (a *adminAPI) updateUser(c *fiber.Ctx) error {
	var req struct {
		Disabled *bool `json:"disabled"`
	}
	if err := jsonBody(c, &req); err != nil {
		return err
	}
	email, err := pathEmail(c)
	if err != nil {
		return err
	}
	u, err := a.auth.UpdateUser(c.UserContext(), authapi.UpdateUser{Actor: actorOf(c), Email: email, Disabled: req.Disabled})
	if err != nil {
		return err
	}
	return c.JSON(u)
}

func (a *adminAPI) roleChange(change func(context.Context, authapi.RoleChange) (authapi.User, error)) fiber.Handler {
	return func(c *fiber.Ctx) error {
		email, err := pathEmail(c)
		if err != nil {
			return err
		}
		u, err := change(c.UserContext(), authapi.RoleChange{Actor: actorOf(c), Email: email, Role: c.Params("role")})
		if err != nil {
			return err
		}
		return c.JSON(u)
	}
}

// pathEmail is the user the path names, escaped as a path segment.
func pathEmail(c *fiber.Ctx) (string, error) {
	email, err := url.PathUnescape(c.Params("email"))
	if err != nil {
		return "", apierr.New(apierr.CodeBadRequest, "the email in the path is not valid")
	}
	return email, nil
}
