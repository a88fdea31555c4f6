package edge

import (
	"bufio"
	"context"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authapi"
	"github.com/gnome-platform/gnome/libs/authn"
	"github.com/gnome-platform/gnome/libs/contract"
	"github.com/gnome-platform/gnome/libs/httpx"
	"github.com/gnome-platform/gnome/libs/ratelimit"
)

// Study links (docs/experiments.md, "Study links"). On the platform, the
// experiment's owner and administrators make, list and revoke them and
// download their runs; the auth service keeps them and decides who may.
// On the experiment's origin, /_gnome/l/{id} opens one: the participant
// gets a session of their own (an experiment token of kind participant
// carrying their run) and lands on the experiment's start page.

// linkOpenRule bounds the openings one client makes: a participant opens
// a link once or twice; guessing 128-bit IDs is hopeless anyway, and this
// keeps anyone from spending runs of multi-use links in bulk.
var linkOpenRule = ratelimit.Rule{Name: "link_open", Limit: 30, Window: time.Minute}

type linksAPI struct {
	log     *slog.Logger
	auth    authapi.Client
	id      *identity
	limiter *ratelimit.Limiter
	origins *origins
}

// linkID is the shape of a link's (and a run's) ID: 16 random bytes,
// base64url. Other shapes are no link, answered here.
var linkID = regexp.MustCompile(`^[A-Za-z0-9_-]{22}$`)

func noLink(id string) error { return httpx.NotFound("no study link %q", id) }

// linkPath is where a link opens on its experiment's origin.
func linkPath(id string) string { return "/_gnome/l/" + id }

func (x *linksAPI) routes(app *fiber.App) {
	g := app.Group("/api/experiments/:slug/links", x.id.requireUser, func(c *fiber.Ctx) error {
		if !httpx.SlugPattern.MatchString(c.Params("slug")) {
			return httpx.NotFound("no experiment %q", c.Params("slug"))
		}
		return c.Next()
	})
	g.Get("", x.list)
	g.Post("", x.create)
	g.Get("/runs", x.runs)
	g.Delete("/:id", x.revoke)
}

// withURLs gives each link its address.
func (x *linksAPI) withURLs(links []authapi.Link) []authapi.Link {
	for i := range links {
		links[i].URL = x.origins.experiment(links[i].Slug) + linkPath(links[i].ID)
	}
	return links
}

// list answers every link, gathered page by page from the auth service.
func (x *linksAPI) list(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), 60*time.Second)
	defer cancel()
	all := authapi.Links{Links: []authapi.Link{}}
	req := authapi.LinksList{Actor: actorOf(c), Slug: c.Params("slug")}
	for {
		page, err := contract.AskAgain(ctx, askAttempt, func(ctx context.Context) (authapi.Links, error) {
			return x.auth.ListLinks(ctx, req)
		})
		if err != nil {
			return err
		}
		all.Links = append(all.Links, x.withURLs(page.Links)...)
		if page.Next == "" || len(page.Links) == 0 {
			break
		}
		req.After = page.Next
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(all)
}

func (x *linksAPI) create(c *fiber.Ctx) error {
	var body struct {
		Kind           string   `json:"kind"`
		Count          int      `json:"count"`
		Labels         []string `json:"labels"`
		CompletionURL  string   `json:"completion_url"`
		CompletionCode string   `json:"completion_code"`
	}
	if err := jsonBody(c, &body); err != nil {
		return err
	}
	res, err := x.auth.CreateLinks(c.UserContext(), authapi.LinksCreate{
		Actor: actorOf(c), Slug: c.Params("slug"), Kind: body.Kind, Count: body.Count, Labels: body.Labels,
		CompletionURL: body.CompletionURL, CompletionCode: body.CompletionCode,
	})
	if err != nil {
		return err
	}
	res.Links = x.withURLs(res.Links)
	return c.Status(fiber.StatusCreated).JSON(res)
}

func (x *linksAPI) revoke(c *fiber.Ctx) error {
	if !linkID.MatchString(c.Params("id")) {
		return noLink(c.Params("id"))
	}
	l, err := x.auth.RevokeLink(c.UserContext(), authapi.LinkRevoke{Actor: actorOf(c), Slug: c.Params("slug"), ID: c.Params("id")})
	if err != nil {
		return err
	}
	return c.JSON(x.withURLs([]authapi.Link{l})[0])
}

// runs answers the runs of the experiment's links (?link= for one), as
// JSON or, with ?format=csv, as a spreadsheet's download: one row per run.
// The first page is read before answering, so that a refusal is an error;
// the rest are streamed page by page.
func (x *linksAPI) runs(c *fiber.Ctx) error {
	format := c.Query("format", "json")
	if format != "json" && format != "csv" {
		return apierr.New(apierr.CodeValidationFailed, "format is json or csv").OnField("/format")
	}
	if l := c.Query("link"); l != "" && !linkID.MatchString(l) {
		return noLink(l)
	}
	req := authapi.RunsList{Actor: actorOf(c), Slug: c.Params("slug"), Link: c.Query("link")}
	first, err := x.runsPage(c.UserContext(), req)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	if format == "json" {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSONCharsetUTF8)
	} else {
		c.Set(fiber.HeaderContentType, "text/csv; charset=utf-8")
		c.Set(fiber.HeaderContentDisposition, fmt.Sprintf(`attachment; filename="%s-runs.csv"`, req.Slug))
	}
	log := x.log
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		page, n := first, 0
		var sheet *csv.Writer
		if format == "csv" {
			sheet = csv.NewWriter(w)
			_ = sheet.Write(runsHeader)
		} else {
			_, _ = w.WriteString(`{"runs":[`)
		}
		for {
			for _, r := range page.Runs {
				if sheet != nil {
					_ = sheet.Write(runRow(r))
					continue
				}
				b, _ := json.Marshal(r)
				if n > 0 {
					_ = w.WriteByte(',')
				}
				_, _ = w.Write(b)
				n++
			}
			if sheet != nil {
				sheet.Flush()
			}
			if page.Next == "" || len(page.Runs) == 0 {
				break
			}
			req.After = page.Next
			var err error
			if page, err = x.runsPage(context.Background(), req); err != nil {
				// The status is sent; a cut-short body is what the
				// client sees (invalid JSON, a short sheet).
				log.Warn("listing study runs failed midway", "slug", req.Slug, "err", err)
				return
			}
		}
		if sheet == nil {
			_, _ = w.WriteString("]}")
		}
	})
	return nil
}

func (x *linksAPI) runsPage(ctx context.Context, req authapi.RunsList) (authapi.Runs, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	return contract.AskAgain(ctx, askAttempt, func(ctx context.Context) (authapi.Runs, error) {
		return x.auth.Runs(ctx, req)
	})
}

// runsHeader are the columns of the runs' spreadsheet: the recruiters'
// parameters each have one, any other parameters share the last as JSON.
var runsHeader = append(append([]string{"run", "link", "label", "participant", "opened_at", "started_at", "finished_at"},
	authapi.RecruiterParams...), "other_params")

// runRow is a run's row of the spreadsheet. A cell that a spreadsheet would
// read as a formula (=, +, -, @, tab, carriage return first) is prefixed
// with a quote: URL parameters are whatever the participant's address
// carried.
func runRow(r authapi.Run) []string {
	at := func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.UTC().Format(time.RFC3339)
	}
	row := []string{r.ID, r.Link, r.Label, r.Participant, r.OpenedAt.UTC().Format(time.RFC3339), at(r.StartedAt), at(r.FinishedAt)}
	other := map[string]string{}
	for k, v := range r.Params {
		if !slices.Contains(authapi.RecruiterParams, k) {
			other[k] = v
		}
	}
	for _, k := range authapi.RecruiterParams {
		row = append(row, r.Params[k])
	}
	if len(other) > 0 {
		b, _ := json.Marshal(other)
		row = append(row, string(b))
	} else {
		row = append(row, "")
	}
	for i := range row {
		if row[i] != "" && strings.ContainsRune("=+-@\t\r", rune(row[i][0])) {
			row[i] = "'" + row[i]
		}
	}
	return row
}

// expRoutes are the routes of an experiment's origin.
func (x *linksAPI) expRoutes(app *fiber.App) {
	app.Get("/_gnome/l/:id", ratelimit.Middleware(x.limiter, linkOpenRule, func(c *fiber.Ctx) []string {
		return []string{"link", httpx.ClientIP(c).String()}
	}), x.open)
}

// open opens a study link. A browser that has this link's run already
// continues it; otherwise the auth service begins a run (or resumes a
// personal link's), and the participant's session replaces any other on
// this origin. Refusals are readable pages for browsers, JSON otherwise.
func (x *linksAPI) open(c *fiber.Ctx) error {
	slug, id := expSlugOf(c), c.Params("id")
	if !linkID.MatchString(id) {
		return x.refuse(c, apierr.New(apierr.CodeNotFound, "this study link does not exist"))
	}
	start := "/experiments/" + slug + "/"
	if cl := claimsOf(c); cl != nil && cl.Kind == authn.KindParticipant && cl.Run != nil && cl.Run.Link == id {
		return c.Redirect(start, fiber.StatusSeeOther)
	}
	q, err := url.ParseQuery(string(c.Request().URI().QueryString()))
	if err != nil {
		return x.refuse(c, apierr.New(apierr.CodeBadRequest, "the address's parameters cannot be read"))
	}
	if q.Get("assignmentId") == authapi.MTurkPreview {
		// A Mechanical Turk worker previewing the HIT: nothing starts,
		// and a single-use link is not spent.
		return x.page(c, fiber.StatusOK, "Preview", "This is a preview of the study. Accept the HIT to begin.")
	}
	params, err := authapi.CheckParams(q)
	if err != nil {
		return x.refuse(c, apierr.New(apierr.CodeBadRequest, "%s", err.Error()))
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), 10*time.Second)
	defer cancel()
	sess, err := x.auth.OpenLink(ctx, authapi.LinkOpen{Slug: slug, ID: id, Params: params})
	if err != nil {
		return x.refuse(c, err)
	}
	x.id.setExperimentCookie(c, sess.Token, sess.ExpiresAt)
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Redirect(start, fiber.StatusSeeOther)
}

// refuse answers an opening that failed: the error's page for a browser
// (its message is written for the participant), the error otherwise.
func (x *linksAPI) refuse(c *fiber.Ctx, err error) error {
	ae := apierr.From(err)
	if !strings.Contains(c.Get(fiber.HeaderAccept), "text/html") || ae.Code.Status() >= 500 {
		return err
	}
	title := "Study link"
	switch ae.Code {
	case apierr.CodeGone:
		title = "This link is closed"
	case apierr.CodeNotFound:
		title = "Unknown study link"
	}
	return x.page(c, ae.Code.Status(), title, ae.Message)
}

func (x *linksAPI) page(c *fiber.Ctx, status int, title, message string) error {
	var b strings.Builder
	p := expPage{Title: title, Slug: expSlugOf(c), Nonce: httpx.CSPNonce(c), Error: message}
	if err := pages["exp-link"].ExecuteTemplate(&b, "layout", p); err != nil {
		return fmt.Errorf("render exp-link: %w", err)
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Status(status).SendString(b.String())
}
