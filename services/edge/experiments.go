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
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authz"
	"github.com/gnome-platform/gnome/libs/contract"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/httpx"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

const localEntry = "gnome.experiment"

// experimentsAPI is the experiments as records: listing, uploading,
// changing and deleting them, and the home page that lists them.
type experimentsAPI struct {
	upload  uploadapi.Client
	id      *identity
	catalog *catalog
	pages   *renderer
	// actors tells each experiment's actor state for its view.
	actors *actorsAPI
	// maxUploadMB is MAX_UPLOAD_SIZE_MB.
	maxUploadMB int64
}

// access loads the experiment of the path and applies its rules for a:
// anonymous visitors of a page are sent to sign in, API callers get 401;
// a signed-in caller who may not gets 403; an experiment the caller may not
// know of, or that is not served, is 404.
func (x *experimentsAPI) access(a experiments.Action) fiber.Handler {
	return func(c *fiber.Ctx) error {
		slug := c.Params("slug")
		if !httpx.SlugPattern.MatchString(slug) {
			return httpx.NotFound("no experiment %q", slug)
		}
		e, err := x.catalog.get(c.UserContext(), slug)
		if err != nil {
			return apierr.Wrap(apierr.CodeUnavailable, err, "experiments are unavailable right now")
		}
		if e == nil {
			return httpx.NotFound("no experiment %q", slug)
		}
		switch experiments.Decide(e.rules, x.id.viewer(c), x.id.enforcer, a) {
		case experiments.Allow:
			c.Locals(localEntry, e)
			return c.Next()
		case experiments.NeedLogin:
			if a == experiments.Open && wantsPage(c) {
				return c.Redirect(x.id.loginURL(c), fiber.StatusSeeOther)
			}
			return authError(c)
		case experiments.Deny:
			return apierr.New(apierr.CodeForbidden, "you may not access experiment %q", slug)
		}
		return httpx.NotFound("no experiment %q", slug)
	}
}

func entryOf(c *fiber.Ctx) *entry { e, _ := c.Locals(localEntry).(*entry); return e }

func (x *experimentsAPI) routes(app *fiber.App) {
	app.Get("/", x.homePage)
	app.Get("/my-experiments", x.developerOrAdmin, x.myExperimentsPage)
	app.Get("/my-experiments/:slug", x.id.requireUser, x.access(experiments.Manage), x.experimentPage)
	app.Get("/api/experiments", x.listExperiments)
	app.Post("/api/experiments", x.id.requireUser, x.uploadExperiment)
	app.Post("/admin/api/upload-experiment", x.id.requireUser, x.uploadExperiment)
	app.Get("/api/experiments/:slug", x.access(experiments.Read), x.getExperiment)
	app.Patch("/api/experiments/:slug", x.id.requireUser, x.patchExperiment)
	app.Delete("/api/experiments/:slug", x.id.requireUser, x.deleteExperiment)
}

// view is an experiment as the API shows it. Who owns it and who uploaded
// its versions, and the manifest's settings meant for the backend or naming
// people, are shown to its owner and admins only (see publicManifest).
type view struct {
	experiments.Config
	// OwnerEmail and Versions shadow Config's, to leave out what only the
	// owner and admins see.
	OwnerEmail string          `json:"owner_email,omitempty"`
	Versions   []versionView   `json:"versions"`
	Manifest   json.RawMessage `json:"manifest"`
	Actor      actorView       `json:"actor"`
	// URL is the experiment's page, on its own origin.
	URL string `json:"url"`
}

type versionView struct {
	experiments.Version
	UploadedBy string `json:"uploaded_by,omitempty"`
}

type actorView struct {
	State string `json:"state"`
	// LastError is why a failed actor failed (a JavaScript actor's syntax
	// error with its file and line, say), for its owner and admins only.
	LastError string `json:"last_error,omitempty"`
}

// viewOf is e as the caller of c may see it.
func (x *experimentsAPI) viewOf(c *fiber.Ctx, e *entry) view {
	v := x.id.viewer(c)
	full := v != nil && (v.IsAdmin || strings.EqualFold(v.Email, e.cfg.OwnerEmail))
	m := json.RawMessage(e.cfg.Manifest)
	if !json.Valid(m) {
		m = json.RawMessage("null")
	} else if !full {
		m = publicManifest(m)
	}
	out := view{Config: e.cfg, Manifest: m, Actor: x.actors.viewOf(e), Versions: []versionView{},
		URL: x.id.origins.experiment(e.cfg.Slug) + "/experiments/" + e.cfg.Slug + "/"}
	for _, ver := range e.cfg.Versions {
		vv := versionView{Version: ver}
		if full {
			vv.UploadedBy = ver.UploadedBy
		}
		out.Versions = append(out.Versions, vv)
	}
	if full {
		out.OwnerEmail = e.cfg.OwnerEmail
	} else {
		out.Actor.LastError = ""
	}
	if out.Indexes == nil {
		out.Indexes = []experiments.IndexState{}
	}
	return out
}

// privateFields are the manifest's fields for the owner's eyes: the
// actor's config (where keys and settings for the backend go), the owner's
// email, the people its access rules name, and demo accounts' passwords.
var privateFields = [][]string{
	{"developer_id"}, {"actor", "config"}, {"auth_policy", "allowed_users"}, {"auth_policy", "denied_users"},
	{"sub_auth", "demo_users"},
}

// publicManifest is the manifest without privateFields.
func publicManifest(raw json.RawMessage) json.RawMessage {
	var m map[string]any
	if json.Unmarshal(raw, &m) != nil {
		return json.RawMessage("null")
	}
	removed := false
	for _, path := range privateFields {
		obj := m
		for i, k := range path {
			if i == len(path)-1 {
				if _, ok := obj[k]; ok {
					delete(obj, k)
					removed = true
				}
				break
			}
			next, ok := obj[k].(map[string]any)
			if !ok {
				break
			}
			obj = next
		}
	}
	if !removed {
		// Kept as written (field order included).
		return raw
	}
	b, err := json.Marshal(m)
	if err != nil {
		return json.RawMessage("null")
	}
	return b
}

// listed are the experiments the caller may see in lists: active ones they
// may open, and for owners and admins their drafts and the rest too.
func (x *experimentsAPI) listed(c *fiber.Ctx) []*entry {
	v := x.id.viewer(c)
	var out []*entry
	for _, e := range x.catalog.list() {
		if experiments.Decide(e.rules, v, x.id.enforcer, experiments.Open) == experiments.Allow ||
			(v != nil && experiments.Decide(e.rules, v, x.id.enforcer, experiments.Read) == experiments.Allow && (v.IsAdmin || strings.EqualFold(v.Email, e.cfg.OwnerEmail))) {
			out = append(out, e)
		}
	}
	return out
}

func (x *experimentsAPI) listExperiments(c *fiber.Ctx) error {
	list := x.listed(c)
	out := make([]view, 0, len(list))
	for _, e := range list {
		out = append(out, x.viewOf(c, e))
	}
	return c.JSON(fiber.Map{"experiments": out})
}

func (x *experimentsAPI) getExperiment(c *fiber.Ctx) error { return c.JSON(x.viewOf(c, entryOf(c))) }

// uploadExperiment streams the body (multipart field "file", or the raw
// ZIP) into the uploads object store, never holding it in memory, and asks
// the upload service to check and store it.
func (x *experimentsAPI) uploadExperiment(c *fiber.Ctx) error {
	caller := x.id.caller(c)
	if !caller.IsAdmin && !slices.Contains(caller.Roles, authz.RoleDeveloper) {
		return apierr.New(apierr.CodeForbidden, "only developers and admins upload experiments")
	}
	limit := x.maxUploadMB << 20
	tooLarge := apierr.New(apierr.CodeBundleTooLarge, "the upload is over the limit of %d MB", x.maxUploadMB)
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
	// Reading the body may take long (a slow client's largest ZIP), so
	// staging has uploadBodyTimeout; each stored chunk's acknowledgement
	// has its own bound (bus.PutObject). Processing then runs in asks of a
	// few seconds within a bound of its own, proportionate to the size,
	// which this deadline does not shorten (uploadapi.Client.Process): a
	// lost upload instance or bus node is noticed within seconds.
	ctx, cancel := context.WithTimeout(c.UserContext(), uploadBodyTimeout)
	defer cancel()
	res, err := x.upload.Upload(ctx, counted, caller)
	if se := (*uploadapi.StageError)(nil); errors.As(err, &se) {
		if counted.over {
			return tooLarge
		}
		if !counted.failed {
			// The body was read as far as it went: the storage failed
			// (unavailable, 503, when it did not answer).
			return se.Err
		}
		return apierr.Wrap(apierr.CodeBadRequest, se.Err, "the upload could not be read")
	}
	if err != nil {
		return err
	}
	// The reply leaves out the manifest text; read the stored state.
	rctx, rcancel := context.WithTimeout(c.UserContext(), readBackTimeout)
	defer rcancel()
	e, err := x.catalog.refresh(rctx, res.Experiment.Slug)
	if err != nil || e == nil {
		return apierr.Wrap(apierr.CodeUnavailable, err, "the experiment was stored but could not be read back")
	}
	if res.Unchanged {
		// No version was made: 200, not 201, and the answer says why.
		return c.JSON(fiber.Map{"experiment": x.viewOf(c, e), "warnings": res.Warnings, "created": false, "unchanged": true, "message": res.Message})
	}
	return c.Status(fiber.StatusCreated).JSON(fiber.Map{"experiment": x.viewOf(c, e), "warnings": res.Warnings, "created": res.Created})
}

const (
	// askAttempt bounds one ask of a read, or of a change that is safe to
	// ask for again, to another service (contract.AskAgain): past it, the
	// ask met a lost instance or bus node and is sent again, within the
	// request's own bound.
	askAttempt = 5 * time.Second
	// changeAttempt is askAttempt for changes that may take longer (a
	// delete drops every document of an experiment; a rollback rebuilds
	// indexes).
	changeAttempt = 15 * time.Second
	// uploadBodyTimeout bounds reading and staging an upload's body.
	uploadBodyTimeout = 10 * time.Minute
	// readBackTimeout bounds reading an experiment just stored or changed.
	readBackTimeout = 15 * time.Second
)

// limitReader fails once more than left bytes are read; failed tells the
// client's faults (a body cut short, over the limit) from the storage's.
type limitReader struct {
	r      io.Reader
	left   int64
	over   bool
	failed bool
}

func (l *limitReader) Read(p []byte) (int, error) {
	n, err := l.r.Read(p)
	if err != nil && !errors.Is(err, io.EOF) {
		l.failed = true
	}
	l.left -= int64(n)
	if l.left < 0 {
		l.over, l.failed = true, true
		return n, errors.New("upload over the size limit")
	}
	return n, err
}

func (x *experimentsAPI) patchExperiment(c *fiber.Ctx) error {
	var req struct {
		Version  *int            `json:"version"`
		Status   *string         `json:"status"`
		Manifest json.RawMessage `json:"manifest"`
	}
	if err := jsonBody(c, &req); err != nil {
		return err
	}
	res, err := x.upload.Update(c.UserContext(), uploadapi.Update{Slug: c.Params("slug"), Version: req.Version, Status: req.Status, Fields: req.Manifest, Caller: x.id.caller(c)})
	if err != nil {
		return err
	}
	e, err := x.catalog.refresh(c.UserContext(), res.Experiment.Slug)
	if err != nil || e == nil {
		return apierr.Wrap(apierr.CodeUnavailable, err, "the experiment was changed but could not be read back")
	}
	return c.JSON(fiber.Map{"experiment": x.viewOf(c, e), "warnings": res.Warnings})
}

func (x *experimentsAPI) deleteExperiment(c *fiber.Ctx) error {
	var req struct {
		Confirm string `json:"confirm"`
	}
	if err := jsonBody(c, &req); err != nil {
		return err
	}
	slug := c.Params("slug")
	ctx, cancel := context.WithTimeout(c.UserContext(), 2*time.Minute)
	defer cancel()
	// Asked again when an ask got no answer (a lost instance or node): the
	// record goes first, so a later ask that finds no experiment after one
	// that got no answer means the lost one deleted it.
	unanswered := false
	_, err := contract.AskAgain(ctx, changeAttempt, func(ctx context.Context) (struct{}, error) {
		err := x.upload.Delete(ctx, uploadapi.Delete{Slug: slug, Confirm: req.Confirm, Caller: x.id.caller(c)})
		switch {
		case errors.Is(err, contract.ErrUnanswered):
			unanswered = true
		case unanswered && apierr.From(err).Code == apierr.CodeNotFound:
			return struct{}{}, nil
		}
		return struct{}{}, err
	})
	if err != nil {
		return err
	}
	x.catalog.drop(slug)
	return c.JSON(fiber.Map{"deleted": slug})
}

func (x *experimentsAPI) homePage(c *fiber.Ctx) error {
	var items []listItem
	for _, e := range x.listed(c) {
		items = append(items, listItem{Slug: e.cfg.Slug, Name: e.cfg.Name, Description: e.cfg.Description, Status: e.cfg.Status})
	}
	return x.pages.render(c, fiber.StatusOK, "index", page{Title: "Experiments", Experiments: items})
}
