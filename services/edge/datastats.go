package edge

import (
	"context"

	"github.com/gofiber/fiber/v2"

	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/exportapi"
)

// GET /api/experiments/{slug}/data/stats: the sizes of the experiment's
// collections and its actor's recent slow data requests, for its owner and
// admins, answered by the export service (gnome.export.data_stats), which
// reads the store; the experiment's page shows them in its "Data size"
// section.

func (x *exportsAPI) dataStatsRoutes(app *fiber.App) {
	app.Get("/api/experiments/:slug/data/stats", x.id.requireUser, x.access(experiments.Manage), x.dataStats)
}

func (x *exportsAPI) dataStats(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), exportCallTimeout)
	defer cancel()
	res, err := x.export.DataStats(ctx, exportapi.DataStatsRequest{Slug: entryOf(c).cfg.Slug, Caller: x.id.caller(c)})
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(res)
}
