package edge

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authz"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/httpx"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

const localEntry = "gnome.experiment"

// viewer is the request's caller for access decisions; nil when anonymous.
func (s *Service) viewer(c *fiber.Ctx) *experiments.Viewer {
	cl := claimsOf(c)
	if cl == nil {
		return nil
	}
	return &experiments.Viewer{Email: cl.Email, Roles: cl.Roles, IsAdmin: s.enforcer.Allowed(cl.Email, authz.ObjAdminPanel, authz.ActAccess)}
}

func (s *Service) caller(c *fiber.Ctx) uploadapi.Caller {
	v := s.viewer(c)
	return uploadapi.Caller{Email: v.Email, Roles: v.Roles, IsAdmin: v.IsAdmin, RequestID: httpx.GetRequestID(c)}
}

// access loads the experiment of the path and applies its rules for a:
// anonymous visitors of a page are sent to sign in, API callers get 401;
// a signed-in caller who may not gets 403; an experiment the caller may not
// know of, or that is not served, is 404.
func (s *Service) access(a experiments.Action) fiber.Handler {
	return func(c *fiber.Ctx) error {
		slug := c.Params("slug")
		if !httpx.SlugPattern.MatchString(slug) {
			return httpx.NotFound("no experiment %q", slug)
		}
		e, err := s.catalog.get(c.UserContext(), slug)
		if err != nil {
			return apierr.Wrap(apierr.CodeUnavailable, err, "experiments are unavailable right now")
		}
		if e == nil {
			return httpx.NotFound("no experiment %q", slug)
		}
		switch experiments.Decide(e.rules, s.viewer(c), s.enforcer, a) {
		case experiments.Allow:
			c.Locals(localEntry, e)
			return c.Next()
		case experiments.NeedLogin:
			if a == experiments.Open && wantsPage(c) {
				return c.Redirect("/auth/login?next="+url.QueryEscape(string(c.Request().RequestURI())), fiber.StatusSeeOther)
			}
			return authError(c)
		case experiments.Deny:
			return apierr.New(apierr.CodeForbidden, "you may not access experiment %q", slug)
		}
		return httpx.NotFound("no experiment %q", slug)
	}
}

func entryOf(c *fiber.Ctx) *entry { e, _ := c.Locals(localEntry).(*entry); return e }

func (s *Service) experimentRoutes(app *fiber.App) {
	app.Get("/", s.homePage)
	app.Get("/api/experiments", s.listExperiments)
	app.Post("/api/experiments", s.requireUser, s.uploadExperiment)
	app.Post("/admin/api/upload-experiment", s.requireUser, s.uploadExperiment)
	app.Get("/api/experiments/:slug", s.access(experiments.Read), s.getExperiment)
	app.Patch("/api/experiments/:slug", s.requireUser, s.patchExperiment)
	app.Delete("/api/experiments/:slug", s.requireUser, s.deleteExperiment)

	app.Get("/experiments/:slug/health", s.access(experiments.Open), s.experimentHealth)
	app.All("/experiments/:slug/api/*", s.access(experiments.Open), s.callActor)
	app.Get("/experiments/:slug", func(c *fiber.Ctx) error {
		return c.Redirect("/experiments/"+c.Params("slug")+"/", fiber.StatusMovedPermanently)
	})
	app.Get("/experiments/:slug/*", s.access(experiments.Open), s.serveStatic)
}

// view is an experiment as the API shows it.
type view struct {
	experiments.Config
	Manifest json.RawMessage `json:"manifest"`
	Actor    actorView       `json:"actor"`
}

type actorView struct {
	State string `json:"state"`
}

func (s *Service) viewOf(e *entry) view {
	m := json.RawMessage(e.cfg.Manifest)
	if !json.Valid(m) {
		m = json.RawMessage("null")
	}
	v := view{Config: e.cfg, Manifest: m, Actor: s.actorViewOf(e)}
	if v.Versions == nil {
		v.Versions = []experiments.Version{}
	}
	if v.Indexes == nil {
		v.Indexes = []experiments.IndexState{}
	}
	return v
}

// listed are the experiments the caller may see in lists: active ones they
// may open, and for owners and admins their drafts and the rest too.
func (s *Service) listed(c *fiber.Ctx) []*entry {
	v := s.viewer(c)
	var out []*entry
	for _, e := range s.catalog.list() {
		if experiments.Decide(e.rules, v, s.enforcer, experiments.Open) == experiments.Allow ||
			(v != nil && experiments.Decide(e.rules, v, s.enforcer, experiments.Read) == experiments.Allow && (v.IsAdmin || strings.EqualFold(v.Email, e.cfg.OwnerEmail))) {
			out = append(out, e)
		}
	}
	return out
}

func (s *Service) listExperiments(c *fiber.Ctx) error {
	list := s.listed(c)
	out := make([]view, 0, len(list))
	for _, e := range list {
		out = append(out, s.viewOf(e))
	}
	return c.JSON(fiber.Map{"experiments": out})
}

func (s *Service) getExperiment(c *fiber.Ctx) error { return c.JSON(s.viewOf(entryOf(c))) }

// uploadExperiment streams the body (multipart field "file", or the raw
// ZIP) into the uploads object store, never holding it in memory, and asks
// the upload service to check and store it.
func (s *Service) uploadExperiment(c *fiber.Ctx) error {
	caller := s.caller(c)
	if !caller.IsAdmin && !slices.Contains(caller.Roles, authz.RoleDeveloper) {
		return apierr.New(apierr.CodeForbidden, "only developers and admins upload experiments")
	}
	limit := s.d.Config.MaxUploadSizeMB << 20
	tooLarge := apierr.New(apierr.CodeBundleTooLarge, "the upload is over the limit of %d MB", s.d.Config.MaxUploadSizeMB)
	// A multipart envelope adds a little; anything declared beyond that is refused unread.
	if n := int64(c.Request().Header.ContentLength()); n > limit+64<<10 {
		return tooLarge
	}
	body := c.Request().BodyStream()
	if body == nil {
		body = bytes.NewReader(c.Body())
	}
	mt, params, _ := mime.ParseMediaType(c.Get(fiber.HeaderContentType))
	var src io.Reader
	switch mt {
	case "application/zip", "application/x-zip-compressed", "application/octet-stream":
		src = body
	case "multipart/form-data":
		mr := multipart.NewReader(bufio.NewReaderSize(body, 64<<10), params["boundary"])
		for {
			part, err := mr.NextPart()
			if errors.Is(err, io.EOF) {
				return apierr.New(apierr.CodeValidationFailed, "the form has no field named file").OnField("/file")
			}
			if err != nil {
				return apierr.Wrap(apierr.CodeBadRequest, err, "the multipart body is malformed")
			}
			if part.FormName() == "file" {
				src = part
				break
			}
		}
	default:
		return apierr.New(apierr.CodeUnsupportedMediaType, "send the ZIP as multipart field \"file\" or as application/zip")
	}
	counted := &limitReader{r: src, left: limit}
	ctx, cancel := context.WithTimeout(c.UserContext(), 10*time.Minute)
	defer cancel()
	res, err := s.upload.Upload(ctx, counted, caller)
	if se := (*uploadapi.StageError)(nil); errors.As(err, &se) {
		if counted.over {
			return tooLarge
		}
		return apierr.Wrap(apierr.CodeBadRequest, se.Err, "the upload could not be read")
	}
	if err != nil {
		return err
	}
	// The reply leaves out the manifest text; read the stored state.
	e, err := s.catalog.refresh(ctx, res.Experiment.Slug)
	if err != nil || e == nil {
		return apierr.Wrap(apierr.CodeUnavailable, err, "the experiment was stored but could not be read back")
	}
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"experiment": s.viewOf(e), "warnings": res.Warnings, "created": res.Created})
}

// limitReader fails once more than left bytes are read.
type limitReader struct {
	r    io.Reader
	left int64
	over bool
}

func (l *limitReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left < 0 {
		l.over = true
		return n, errors.New("upload over the size limit")
	}
	return n, err
}

func (s *Service) patchExperiment(c *fiber.Ctx) error {
	var req struct {
		Version  *int            `json:"version"`
		Status   *string         `json:"status"`
		Manifest json.RawMessage `json:"manifest"`
	}
	if err := jsonBody(c, &req); err != nil {
		return err
	}
	res, err := s.upload.Update(c.UserContext(), uploadapi.Update{Slug: c.Params("slug"), Version: req.Version, Status: req.Status, Fields: req.Manifest, Caller: s.caller(c)})
	if err != nil {
		return err
	}
	e, err := s.catalog.refresh(c.UserContext(), res.Experiment.Slug)
	if err != nil || e == nil {
		return apierr.Wrap(apierr.CodeUnavailable, err, "the experiment was changed but could not be read back")
	}
	return c.JSON(fiber.Map{"experiment": s.viewOf(e), "warnings": res.Warnings})
}

func (s *Service) deleteExperiment(c *fiber.Ctx) error {
	var req struct {
		Confirm string `json:"confirm"`
	}
	if err := jsonBody(c, &req); err != nil {
		return err
	}
	slug := c.Params("slug")
	ctx, cancel := context.WithTimeout(c.UserContext(), 2*time.Minute)
	defer cancel()
	err := s.upload.Delete(ctx, uploadapi.Delete{Slug: slug, Confirm: req.Confirm, Caller: s.caller(c)})
	if err != nil {
		return err
	}
	s.catalog.drop(slug)
	return c.JSON(fiber.Map{"deleted": slug})
}

// experimentHealth is the actor's state; experiments without an actor have
// none.
func (s *Service) experimentHealth(c *fiber.Ctx) error { return s.actorHealth(c) }

// callActor hands /experiments/{slug}/api/* to the experiment's actor.
func (s *Service) callActor(c *fiber.Ctx) error { return s.actorCall(c) }

func (s *Service) homePage(c *fiber.Ctx) error {
	var items []listItem
	for _, e := range s.listed(c) {
		items = append(items, listItem{Slug: e.cfg.Slug, Name: e.cfg.Name, Description: e.cfg.Description, Status: e.cfg.Status})
	}
	return s.render(c, fiber.StatusOK, "index", page{Title: "Experiments", Experiments: items})
}
