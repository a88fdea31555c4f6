package edge

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/nats-io/nats.go"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/contract"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/exportapi"
	"github.com/gnome-platform/gnome/libs/exportpkg"
	"github.com/gnome-platform/gnome/libs/exportstore"
	"github.com/gnome-platform/gnome/libs/ratelimit"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

// The export routes: the edge checks who asks and hands everything else to
// the export service (libs/exports); it streams progress from the service's
// core-NATS subject and files from the exports object store, so any edge
// instance serves any export whichever one took the request.

const (
	// exportCallTimeout bounds a call to the export service.
	exportCallTimeout = 15 * time.Second
	// Server-sent events: the whole log is read again every ssePoll in case
	// a core-NATS message was missed, a comment keeps proxies from closing an
	// idle stream every sseKeepalive, and no stream lasts over sseMax.
	ssePoll      = 5 * time.Second
	sseKeepalive = 15 * time.Second
	sseMax       = 30 * time.Minute
	// writeStall is how long one write to a streaming client may block; a
	// stream extends it on every write, so a slow client that keeps reading
	// is served past the server's WriteTimeout and a stalled one is dropped.
	writeStall = time.Minute
	// downloadMax bounds a whole download from the object store.
	downloadMax = 2 * time.Hour
)

// exportsAPI is asking for packages of experiments, following their builds,
// downloading them, and their administration.
type exportsAPI struct {
	export  exportapi.Client
	id      *identity
	limiter *ratelimit.Limiter
	// access applies an experiment's rules (experimentsAPI.access).
	access func(experiments.Action) fiber.Handler
	// nc carries the progress the export service publishes.
	nc *nats.Conn
	// files is the exports object store downloads stream from; it binds to
	// the bucket on first use.
	files *exportstore.ObjectStore
}

func (x *exportsAPI) routes(app *fiber.App) {
	// The export limit counts per client and experiment.
	limitExport := ratelimit.Middleware(x.limiter, ratelimit.Export, func(c *fiber.Ctx) []string {
		return append(clientKey(c), c.Params("slug"))
	})
	app.Post("/api/experiments/:slug/exports", x.id.requireUser, x.access(experiments.Export),
		limitExport, x.requestExport(""))
	// GET aliases of the original platform. They queue a job, which makes
	// them not quite safe, yet they stay outside the CSRF token check that
	// covers unsafe methods, as every GET does: a SameSite=Lax session
	// cookie rides only on top-level navigations from other sites, the
	// result is visible only to the requester, the job is rate-limited and
	// reused when nothing changed. What a browser marks as coming from
	// another site is refused all the same (sameSiteOnly).
	for _, t := range exportapi.Types {
		app.Get("/api/package-"+string(t)+"/:slug", noHead, x.id.requireUser, sameSiteOnly, x.access(experiments.Export),
			limitExport, x.requestExport(t))
	}
	x.researchRoutes(app)
	x.dataStatsRoutes(app)
	app.Get("/api/exports/:id", x.id.requireUser, x.getExport)
	app.Get("/api/exports/:id/events", x.id.requireUser, x.exportEvents)
	app.Get("/api/exports/:id/download", x.id.requireUser, limit(x.limiter, ratelimit.Download), x.downloadExport)
	app.Get("/admin/api/exports", x.id.requireAdmin, x.listExports)
	app.Post("/admin/api/exports/:id/invalidate", x.id.requireAdmin, x.invalidateExport)
}

// noHead keeps HEAD, which Fiber routes with GET, from queueing a job.
func noHead(c *fiber.Ctx) error {
	if c.Method() == fiber.MethodHead {
		return apierr.New(apierr.CodeMethodNotAllowed, "use GET")
	}
	return c.Next()
}

// sameSiteOnly refuses a cookie-borne request that the browser says came
// from another site (Sec-Fetch-Site), for GET routes that change state.
func sameSiteOnly(c *fiber.Ctx) error {
	if _, ok := bearerOf(c); !ok {
		if site := strings.ToLower(c.Get("Sec-Fetch-Site")); site != "" && site != "same-origin" && site != "none" {
			return apierr.New(apierr.CodeCsrfRejected, "request refused: it came from another site")
		}
	}
	return c.Next()
}

// exportView is an export as the API shows it: its log, and where to get
// the file once it may be downloaded.
type exportView struct {
	exportapi.Log
	URL         string `json:"url"`
	EventsURL   string `json:"events_url"`
	DownloadURL string `json:"download_url,omitempty"`
}

// Percent is the progress for pages.
func (v exportView) Percent() int { return int(v.Progress*100 + 0.5) }

func viewOfExport(l exportapi.Log, now time.Time) exportView {
	v := exportView{Log: l, URL: "/api/exports/" + l.ID, EventsURL: "/api/exports/" + l.ID + "/events"}
	if l.Downloadable(now) {
		v.DownloadURL = "/api/exports/" + l.ID + "/download"
	}
	return v
}

// viewsOfExports are the views of a list of logs.
func viewsOfExports(list []exportapi.Log, now time.Time) []exportView {
	out := make([]exportView, 0, len(list))
	for _, l := range list {
		out = append(out, viewOfExport(l, now))
	}
	return out
}

// requestExport asks the export service for a package of the experiment:
// 202 with the job when it is queued or being built, 200 with the ready
// export when one of the same source is reused. aliasType is the type of
// an alias route; "" reads it from the JSON body.
func (x *exportsAPI) requestExport(aliasType exportapi.Type) fiber.Handler {
	return func(c *fiber.Ctx) error {
		typ := aliasType
		if typ == "" {
			var req struct {
				Type *string `json:"type"`
			}
			if err := jsonBody(c, &req); err != nil {
				return err
			}
			if req.Type == nil || *req.Type == "" {
				return apierr.New(apierr.CodeValidationFailed, "type is required: standalone, upload-ready or docker").OnField("/type")
			}
			t, err := exportapi.ParseType(*req.Type)
			if err != nil {
				return err
			}
			typ = t
		}
		ctx, cancel := context.WithTimeout(c.UserContext(), exportCallTimeout)
		defer cancel()
		// A second ask joins the export the first queued for this requester.
		res, err := contract.AskAgain(ctx, askAttempt, func(ctx context.Context) (exportapi.Requested, error) {
			return x.export.Request(ctx, exportapi.Request{Slug: entryOf(c).cfg.Slug, Type: typ, Caller: x.id.caller(c)})
		})
		if err != nil {
			return err
		}
		out := struct {
			exportView
			Reused bool `json:"reused"`
		}{viewOfExport(res.Export, time.Now()), res.Reused}
		c.Set(fiber.HeaderCacheControl, "no-store")
		if res.Reused {
			return c.JSON(out)
		}
		c.Set(fiber.HeaderLocation, out.URL)
		return c.Status(fiber.StatusAccepted).JSON(out)
	}
}

// exportID is the path's export ID; anything not shaped like one is no
// export, answered without asking the service.
func exportID(c *fiber.Ctx) (string, error) {
	id := c.Params("id")
	if !exportapi.ValidID(id) {
		return "", apierr.New(apierr.CodeNotFound, "no export %q", id)
	}
	return id, nil
}

// fetchExport reads an export's log through the service, which shows it
// only to its requester and admins.
func (x *exportsAPI) fetchExport(ctx context.Context, id string, caller uploadapi.Caller) (exportapi.Log, error) {
	ctx, cancel := context.WithTimeout(ctx, exportCallTimeout)
	defer cancel()
	return contract.AskAgain(ctx, askAttempt, func(ctx context.Context) (exportapi.Log, error) {
		return x.export.Get(ctx, exportapi.Get{ID: id, Caller: caller})
	})
}

func (x *exportsAPI) getExport(c *fiber.Ctx) error {
	id, err := exportID(c)
	if err != nil {
		return err
	}
	l, err := x.fetchExport(c.UserContext(), id, x.id.caller(c))
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(viewOfExport(l, time.Now()))
}

// final reports whether no further change of the export is worth waiting
// for on a progress stream.
func final(status string) bool {
	return status == exportapi.StatusReady || status == exportapi.StatusFailed || status == exportapi.StatusInvalidated
}

// exportEvents streams an export's log as server-sent events ("export"
// events carrying the view as JSON) until it reaches a final status. It
// subscribes to the progress subject before reading the current state, so
// that no change falls between the two; the read also applies the access
// rule, and its refusal is an ordinary error response.
func (x *exportsAPI) exportEvents(c *fiber.Ctx) error {
	id, err := exportID(c)
	if err != nil {
		return err
	}
	caller := x.id.caller(c)
	msgs := make(chan *nats.Msg, 64)
	// A full channel drops messages (a slow consumer); the periodic read
	// catches up.
	sub, err := x.nc.ChanSubscribe(exportapi.ProgressSubject(id), msgs)
	if err != nil {
		return apierr.Wrap(apierr.CodeUnavailable, err, "export progress is unavailable right now")
	}
	first, err := x.fetchExport(c.UserContext(), id, caller)
	if err != nil {
		_ = sub.Unsubscribe()
		return err
	}
	c.Set(fiber.HeaderContentType, "text/event-stream; charset=utf-8")
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set("X-Accel-Buffering", "no")
	fctx := c.Context()
	st := &sseStream{x: x, fctx: fctx, id: id, caller: caller, msgs: msgs}
	fctx.SetBodyStreamWriter(func(w *bufio.Writer) {
		defer func() { _ = sub.Unsubscribe() }()
		st.w = w
		st.run(first)
	})
	return nil
}

// streamConn is what a response streamed after its handler returned uses
// of the request (fasthttp's RequestCtx, which outlives Fiber's Ctx).
type streamConn interface {
	SetWriteDeadline(time.Time) error
	// Done is closed when the server shuts down.
	Done() <-chan struct{}
}

// sseStream is one client's progress stream.
type sseStream struct {
	x      *exportsAPI
	fctx   streamConn
	w      *bufio.Writer
	id     string
	caller uploadapi.Caller
	msgs   <-chan *nats.Msg

	last     []byte
	lastSeen time.Time
}

func (st *sseStream) run(first exportapi.Log) {
	if st.write([]byte("retry: 3000\n\n")) != nil {
		return
	}
	done, err := st.send(first)
	if err != nil || done {
		return
	}
	poll := time.NewTicker(ssePoll)
	defer poll.Stop()
	keep := time.NewTicker(sseKeepalive)
	defer keep.Stop()
	limit := time.NewTimer(sseMax)
	defer limit.Stop()
	for {
		var l exportapi.Log
		select {
		case m := <-st.msgs:
			if json.Unmarshal(m.Data, &l) != nil || l.ID != st.id {
				continue
			}
		case <-poll.C:
			got, err := st.x.fetchExport(context.Background(), st.id, st.caller)
			if err != nil {
				if ae := apierr.From(err); ae.Code == apierr.CodeNotFound {
					// Gone (the experiment was deleted, or access withdrawn).
					body, _ := json.Marshal(ae.ToBody(st.caller.RequestID))
					_ = st.write(append(append([]byte("event: error\ndata: "), body...), "\n\n"...))
					return
				}
				continue // a passing fault: the next tick tries again
			}
			l = got
		case <-keep.C:
			if st.write([]byte(": keepalive\n\n")) != nil {
				return
			}
			continue
		case <-limit.C:
			return
		case <-st.fctx.Done():
			return // the server is shutting down
		}
		done, err := st.send(l)
		if err != nil || done {
			return
		}
	}
}

// send writes l unless it is what was sent last or older than it; done
// reports a final status sent.
func (st *sseStream) send(l exportapi.Log) (done bool, err error) {
	if !st.lastSeen.IsZero() && l.UpdatedAt.Before(st.lastSeen) {
		return false, nil
	}
	data, err := json.Marshal(viewOfExport(l, time.Now()))
	if err != nil {
		return false, err
	}
	if string(data) == string(st.last) {
		return final(l.Status), nil
	}
	st.last, st.lastSeen = data, l.UpdatedAt
	msg := make([]byte, 0, len(data)+32)
	msg = append(msg, "event: export\ndata: "...)
	msg = append(msg, data...)
	msg = append(msg, "\n\n"...)
	if err := st.write(msg); err != nil {
		return false, err
	}
	return final(l.Status), nil
}

// write sends b at once; an error means the client has gone.
func (st *sseStream) write(b []byte) error {
	_ = st.fctx.SetWriteDeadline(time.Now().Add(writeStall))
	if _, err := st.w.Write(b); err != nil {
		return err
	}
	return st.w.Flush()
}

// downloadExport hands out an export's file: a redirect to a presigned link
// when the service keeps it in S3-compatible storage, else the object
// streamed from the exports object store. Whether the export may be
// downloaded is the export service's decision alone: it answers a Download
// only for a ready export within retention, and refuses the rest (gone, 410,
// when invalidated; conflict, 409, while not ready; not_found, 404, past
// retention), which reaches the client as the service said it.
func (x *exportsAPI) downloadExport(c *fiber.Ctx) error {
	id, err := exportID(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), exportCallTimeout)
	defer cancel()
	d, err := contract.AskAgain(ctx, askAttempt, func(ctx context.Context) (exportapi.Download, error) {
		return x.export.Download(ctx, exportapi.Get{ID: id, Caller: x.id.caller(c)})
	})
	if err != nil {
		return err
	}
	l := d.Export
	c.Set(fiber.HeaderCacheControl, "no-store")
	if d.URL != "" {
		return c.Redirect(d.URL, fiber.StatusFound)
	}
	etag := `"` + l.Checksum + `"`
	c.Set(fiber.HeaderETag, etag)
	c.Set("X-Checksum-SHA256", l.Checksum)
	name := l.FileName
	if name == "" {
		name = exportpkg.FileName(l.Slug, l.Version, l.Type)
	}
	c.Set(fiber.HeaderContentDisposition, exportstore.Attachment(name))
	if l.Checksum != "" && ifNoneMatch(c.Get(fiber.HeaderIfNoneMatch), etag) {
		return c.SendStatus(fiber.StatusNotModified)
	}
	key := d.StorageKey
	if key == "" {
		key = l.StorageKey
	}
	if key == "" {
		key = exportapi.StorageKey(l.ID)
	}
	// The reader outlives the handler: fasthttp reads it as it writes the
	// response and closes it after, which ends rctx.
	rctx, rcancel := context.WithTimeout(context.WithoutCancel(c.UserContext()), downloadMax)
	r, obj, err := x.files.Open(rctx, key)
	if err != nil {
		rcancel()
		if errors.Is(err, exportstore.ErrNotFound) {
			return apierr.New(apierr.CodeNotFound, "the file of export %s is no longer stored", id)
		}
		return apierr.Wrap(apierr.CodeUnavailable, err, "export storage is unavailable right now")
	}
	c.Set(fiber.HeaderContentType, l.ContentType())
	c.Context().SetBodyStream(&downloadReader{r: r, cancel: rcancel, fctx: c.Context()}, int(obj.Size))
	return nil
}

// ifNoneMatch reports whether an If-None-Match header names etag.
func ifNoneMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimPrefix(strings.TrimSpace(t), "W/")
		if t == etag || t == "*" {
			return true
		}
	}
	return false
}

// downloadReader is an export file on its way to the client: each read
// gives the client writeStall more to take what was read before, and Close
// releases the object store's consumer.
type downloadReader struct {
	r      io.ReadCloser
	cancel context.CancelFunc
	fctx   streamConn
	once   sync.Once
}

func (d *downloadReader) Read(p []byte) (int, error) {
	_ = d.fctx.SetWriteDeadline(time.Now().Add(writeStall))
	return d.r.Read(p)
}

func (d *downloadReader) Close() error {
	var err error
	d.once.Do(func() { err = d.r.Close(); d.cancel() })
	return err
}

// listExports is the admin's list of export logs, newest first.
func (x *exportsAPI) listExports(c *fiber.Ctx) error {
	slug := c.Query("slug")
	limit := 0
	if q := c.Query("limit"); q != "" {
		n, err := strconv.Atoi(q)
		if err != nil || n < 1 || n > 1000 {
			return apierr.New(apierr.CodeValidationFailed, "limit must be a number from 1 to 1000").OnField("/limit")
		}
		limit = n
	}
	list, err := x.logs(c, slug, limit)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(fiber.Map{"exports": viewsOfExports(list, time.Now())})
}

func (x *exportsAPI) logs(c *fiber.Ctx, slug string, limit int) ([]exportapi.Log, error) {
	ctx, cancel := context.WithTimeout(c.UserContext(), exportCallTimeout)
	defer cancel()
	res, err := x.export.List(ctx, exportapi.List{Slug: slug, Limit: limit, Caller: x.id.caller(c)})
	return res.Exports, err
}

// invalidateExport marks an export invalidated, deleting its file when
// asked. It takes JSON {"delete_files": bool}, no body at all, or the
// admin page's form, which is sent back to the page.
func (x *exportsAPI) invalidateExport(c *fiber.Ctx) error {
	id, err := exportID(c)
	if err != nil {
		return err
	}
	var req struct {
		DeleteFiles bool `json:"delete_files"`
	}
	ct := strings.ToLower(c.Get(fiber.HeaderContentType))
	form := strings.HasPrefix(ct, fiber.MIMEApplicationForm)
	switch {
	case form:
		switch strings.ToLower(c.FormValue("delete_files")) {
		case "1", "on", "true", "yes":
			req.DeleteFiles = true
		}
	case len(c.Body()) > 0:
		if err := jsonBody(c, &req); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), exportCallTimeout)
	defer cancel()
	l, err := x.export.Invalidate(ctx, exportapi.Invalidate{ID: id, DeleteFiles: req.DeleteFiles, Caller: x.id.caller(c)})
	if err != nil {
		return err
	}
	if form {
		return c.Redirect("/admin/exports", fiber.StatusSeeOther)
	}
	return c.JSON(viewOfExport(l, time.Now()))
}
