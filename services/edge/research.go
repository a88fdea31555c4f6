package edge

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/contract"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/exportapi"
	"github.com/gnome-platform/gnome/libs/ratelimit"
)

// Research data: an experiment's collections listed with their documents,
// and one of them asked for as a CSV or JSON Lines file. The file is an
// export of type research-data, built by the export service into the
// export store and downloaded through GET /api/exports/{id}/download like
// any export, so that no edge holds a collection: it streams the stored
// file (or redirects to a presigned link). The export service decides who
// may have it (the owner and admins) whoever asks over the bus.

func (x *exportsAPI) researchRoutes(app *fiber.App) {
	limitExport := ratelimit.Middleware(x.limiter, ratelimit.Export, func(c *fiber.Ctx) []string {
		return append(clientKey(c), c.Params("slug"))
	})
	app.Get("/api/experiments/:slug/data", x.id.requireUser, x.access(experiments.Export), x.listData)
	app.Post("/api/experiments/:slug/data", x.id.requireUser, x.access(experiments.Export), limitExport, x.requestData)
}

// listData answers {slug, collections: [{name, documents}]}.
func (x *exportsAPI) listData(c *fiber.Ctx) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), exportCallTimeout)
	defer cancel()
	res, err := contract.AskAgain(ctx, askAttempt, func(ctx context.Context) (exportapi.DataCollections, error) {
		return x.export.Data(ctx, exportapi.DataList{Slug: entryOf(c).cfg.Slug, Caller: x.id.caller(c)})
	})
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(res)
}

// requestData takes {"collection", "format": "csv"|"jsonl", "from", "to"}
// (times in RFC 3339, each optional) and answers as requestExport does: 202
// with the queued export, or 200 with a ready one of the same collection,
// format, times and data.
func (x *exportsAPI) requestData(c *fiber.Ctx) error {
	var req struct {
		Collection *string `json:"collection"`
		Format     *string `json:"format"`
		From       *string `json:"from"`
		To         *string `json:"to"`
	}
	if err := jsonBody(c, &req); err != nil {
		return err
	}
	if req.Collection == nil || *req.Collection == "" {
		return apierr.New(apierr.CodeValidationFailed, "collection is required: see GET /api/experiments/{slug}/data").OnField("/collection")
	}
	q := &exportapi.DataQuery{Collection: *req.Collection, Format: exportapi.FormatCSV}
	if req.Format != nil {
		q.Format = *req.Format
	}
	var err error
	if req.From != nil {
		if q.From, err = exportapi.ParseDataTime("from", *req.From); err != nil {
			return err
		}
	}
	if req.To != nil {
		if q.To, err = exportapi.ParseDataTime("to", *req.To); err != nil {
			return err
		}
	}
	if err := q.Check(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), exportCallTimeout)
	defer cancel()
	// A second ask joins the export the first queued for this requester.
	res, err := contract.AskAgain(ctx, askAttempt, func(ctx context.Context) (exportapi.Requested, error) {
		return x.export.Request(ctx, exportapi.Request{Slug: entryOf(c).cfg.Slug, Type: exportapi.ResearchData, Data: q, Caller: x.id.caller(c)})
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
