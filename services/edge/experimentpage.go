package edge

import (
	"context"
	"html/template"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/gnome-platform/gnome/libs/actorapi"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/exportapi"
)

// The page of one experiment, GET /my-experiments/{slug}: for its owner and
// administrators (experiments.Manage decides, as for the API routes the page
// calls; others get the error page, 403, or 404 for a draft they may not
// know of). The server draws what the edge already holds (the record, the
// actor's state, the index states); the page's script loads the rest from
// the JSON API with the same cookie and CSRF token as every console page,
// and fetches this page again every few seconds to redraw the parts marked
// data-refresh, so that they are drawn by the template alone.

// logLinesKept is how many actor log lines the page keeps; older ones are
// dropped as new ones come, so a chatty actor cannot grow the page.
const logLinesKept = 200

// init adds the page to errorpages.go's pageTemplates from here, so that
// this file owns its page as that one owns its list.
func init() {
	pageTemplates["experiment"] = template.Must(template.New("experiment").ParseFS(pageFS, "pages/layout.html", "pages/experiment.html"))
}

// experimentPage is what pages/experiment.html shows.
type experimentPage struct {
	page
	Slug, Name, Description, Owner, Status string
	Version                                int
	Checksum, ChecksumShort                string
	// URL opens the experiment on its own origin.
	URL       string
	Updated   string
	UpdatedAt time.Time
	Size      string
	Statuses  []string
	Actor     actorPageState
	Indexes   []experiments.IndexState
	// ExportTypes are the package types the caller may ask for: the page is
	// for the owner and admins, who may ask for every one.
	ExportTypes []exportapi.Type
	LogLines    int
	// Accounts is whether the experiment has accounts of its own
	// (sub_auth), which the page then lists.
	Accounts bool
}

// actorPageState is the actor as the page shows it: the state of the
// experiment's view, and the restarts and calls of the worker's record.
type actorPageState struct {
	Declared         bool
	State, LastError string
	Restarts         int
	Calls            int64
	Started          string
}

func (x *experimentsAPI) experimentPage(c *fiber.Ctx) error {
	e := entryOf(c)
	now := time.Now()
	v := experimentPage{
		Slug: e.cfg.Slug, Name: e.cfg.Name, Description: e.cfg.Description, Owner: e.cfg.OwnerEmail,
		Status: e.cfg.Status, Version: e.cfg.Version, Checksum: e.cfg.Checksum, ChecksumShort: shortSum(e.cfg.Checksum),
		URL:     x.id.origins.experiment(e.cfg.Slug) + "/experiments/" + e.cfg.Slug + "/",
		Updated: timeAgo(e.cfg.UpdatedAt, now), UpdatedAt: e.cfg.UpdatedAt,
		Statuses: myStatuses, Indexes: e.cfg.Indexes, ExportTypes: exportapi.Types, LogLines: logLinesKept,
		Actor:    x.actors.pageState(e, now),
		Accounts: e.manifest != nil && e.manifest.SubAuth.On(),
	}
	for _, ver := range e.cfg.Versions {
		if ver.Version == e.cfg.Version {
			v.Size = byteSize(ver.Size)
		}
	}
	v.Title = v.Name
	if v.Title == "" {
		v.Title = v.Slug
	}
	return x.pages.renderView(c, fiber.StatusOK, "experiment", &v.page, &v)
}

// shortSum is the start of a checksum, enough to tell versions apart.
func shortSum(sum string) string {
	if len(sum) > 12 {
		return sum[:12]
	}
	return sum
}

// pageState is e's actor for its page. The restarts come from the
// worker's record only while it describes the current bundle: those of a
// version no longer served would mislead.
func (a *actorsAPI) pageState(e *entry, now time.Time) actorPageState {
	av := a.viewOf(e)
	st := actorPageState{Declared: e.manifest != nil && e.manifest.Actor != nil, State: av.State, LastError: av.LastError}
	if !runsActor(e) {
		return st
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	ab, err := a.actorBus(ctx)
	if err != nil {
		return st
	}
	if rec, ok := ab.cached(e.cfg.Slug); ok && rec.Checksum == e.cfg.Checksum {
		st.Restarts, st.Calls = rec.Restarts, rec.Calls
		if rec.StartedAt != nil && rec.State == actorapi.StateRunning {
			st.Started = timeAgo(*rec.StartedAt, now)
		}
		if st.LastError == "" && rec.State != actorapi.StateFailed {
			// A past failure the actor restarted from still says why.
			st.LastError = rec.LastError
		}
	}
	return st
}
