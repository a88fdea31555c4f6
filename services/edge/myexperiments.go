package edge

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authz"
	"github.com/gnome-platform/gnome/libs/experiments"
)

// The "My experiments" page: a developer's or admin's own experiments, an
// upload form whose script shows the bytes sent, and a status switch per
// experiment. The page's script fetches the page itself again to refresh
// the list, so the rows are drawn in one place only (myexperiments.html).

// myRow is one of the caller's experiments as the page shows it.
type myRow struct {
	Slug, Name, Status, Actor string
	Version                   int
	// Size is the current version's bundle, as people read sizes.
	Size string
	// Updated is how long ago the experiment changed; UpdatedAt is the
	// exact time, for the title and a <time> element.
	Updated   string
	UpdatedAt time.Time
}

// myStatuses are the states the status switch offers.
var myStatuses = []string{experiments.StatusActive, experiments.StatusDraft, experiments.StatusInactive, experiments.StatusArchived}

// developerOrAdmin lets through the callers who may upload: others get 403,
// and anonymous browsers are sent to sign in, as /admin does.
func (x *experimentsAPI) developerOrAdmin(c *fiber.Ctx) error {
	cl := claimsOf(c)
	if cl == nil {
		return x.id.requireUser(c)
	}
	if x.id.isAdmin(c) || (cl.Kind == "" && cl.HasRole(authz.RoleDeveloper)) {
		return c.Next()
	}
	return apierr.New(apierr.CodeForbidden, "developers and administrators only")
}

func (x *experimentsAPI) myExperimentsPage(c *fiber.Ctx) error {
	email := claimsOf(c).Email
	now := time.Now()
	var rows []myRow
	for _, e := range x.catalog.list() {
		// Admins see every experiment on /admin; here they too see their own.
		if !strings.EqualFold(e.cfg.OwnerEmail, email) {
			continue
		}
		r := myRow{Slug: e.cfg.Slug, Name: e.cfg.Name, Status: e.cfg.Status, Version: e.cfg.Version,
			Actor: x.actors.viewOf(e).State, Updated: timeAgo(e.cfg.UpdatedAt, now), UpdatedAt: e.cfg.UpdatedAt}
		for _, v := range e.cfg.Versions {
			if v.Version == e.cfg.Version {
				r.Size = byteSize(v.Size)
			}
		}
		rows = append(rows, r)
	}
	slices.SortFunc(rows, func(a, b myRow) int { return b.UpdatedAt.Compare(a.UpdatedAt) })
	return x.pages.render(c, fiber.StatusOK, "myexperiments", page{Title: "My experiments", Mine: rows, Statuses: myStatuses, MaxUploadMB: x.maxUploadMB})
}

// byteSize is n as people read sizes: "512 B", "1.1 MB" (powers of 1024,
// one decimal below 10).
func byteSize(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d B", n)
	}
	f := float64(n)
	for _, unit := range []string{"KB", "MB", "GB", "TB"} {
		f /= 1024
		if f < 1024 || unit == "TB" {
			if f < 10 {
				return fmt.Sprintf("%.1f %s", f, unit)
			}
			return fmt.Sprintf("%.0f %s", f, unit)
		}
	}
	return fmt.Sprintf("%d B", n)
}

// timeAgo is how long before now t was, as people say it: "just now",
// "3 minutes ago", "yesterday", then the date.
func timeAgo(t, now time.Time) string {
	if t.IsZero() {
		return "never"
	}
	d := now.Sub(t)
	plural := func(n int, unit string) string {
		if n == 1 {
			return "1 " + unit + " ago"
		}
		return fmt.Sprintf("%d %ss ago", n, unit)
	}
	switch {
	case d < time.Minute:
		// A clock a little ahead of this edge's reads as now too.
		return "just now"
	case d < time.Hour:
		return plural(int(d/time.Minute), "minute")
	case d < 24*time.Hour:
		return plural(int(d/time.Hour), "hour")
	case d < 48*time.Hour:
		return "yesterday"
	case d < 30*24*time.Hour:
		return plural(int(d/(24*time.Hour)), "day")
	}
	return t.UTC().Format("2 Jan 2006")
}
