package edge

import (
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/httpx"
)

// An edge with Only set serves one experiment, as `gnome standalone` runs
// it from an export package:
//
//   - GET / redirects to /experiments/{Only}/;
//   - every route naming another slug (/experiments/{slug}/...,
//     /api/experiments/{slug}..., /api/package-{type}/{slug}) answers 404,
//     as if the experiment did not exist, and GET /api/experiments lists
//     only this one;
//   - uploads are refused, this experiment's too: the package is where its
//     bundle comes from (a restart installs the package's version again when
//     it is not the current one), and the database holds no other.
//
// Everything else (sign-in, the admin pages, health, the experiment's own
// API, exports of it) works as on the platform.

// onlyPrefixes are the routes whose next path segment is a slug.
var onlyPrefixes = []string{"/experiments/", "/api/experiments/", "/api/package-"}

// standalone is the single-experiment rules of an edge with Only set.
type standalone struct {
	only        string
	experiments *experimentsAPI
}

func (st standalone) onlyExperiment(c *fiber.Ctx) error {
	p := c.Path()
	// Routes match without regard to case; so do these rules.
	lower := strings.ToLower(p)
	switch {
	case lower == "/" && (c.Method() == fiber.MethodGet || c.Method() == fiber.MethodHead):
		return c.Redirect("/experiments/"+st.only+"/", fiber.StatusFound)
	case uploadRoutes[lower] && c.Method() == fiber.MethodPost:
		return apierr.New(apierr.CodeForbidden,
			"this g.nome runs only experiment %q from its export package (gnome standalone): uploads are off; run gnome serve to upload experiments", st.only)
	case lower == "/api/experiments" && c.Method() == fiber.MethodGet:
		return st.listOnly(c)
	}
	for _, prefix := range onlyPrefixes {
		if !strings.HasPrefix(lower, prefix) {
			continue
		}
		rest := p[len(prefix):]
		if prefix == "/api/package-" {
			// /api/package-{type}/{slug}
			_, rest, _ = strings.Cut(rest, "/")
		}
		slug, _, _ := strings.Cut(rest, "/")
		if slug != st.only {
			return httpx.NotFound("no experiment %q", slug)
		}
		break
	}
	return c.Next()
}

// listOnly is GET /api/experiments with this experiment alone, when the
// caller may see it.
func (st standalone) listOnly(c *fiber.Ctx) error {
	out := []view{}
	for _, e := range st.experiments.listed(c) {
		if e.cfg.Slug == st.only {
			out = append(out, st.experiments.viewOf(c, e))
		}
	}
	return c.JSON(fiber.Map{"experiments": out})
}
