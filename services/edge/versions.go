package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/contract"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

// rollbackTimeout bounds a rollback: it may build the managed indexes of
// the version it makes current, as an upload does.
const rollbackTimeout = 2 * time.Minute

// versionsAPI is an experiment's kept versions and the rollback to one of
// them. The upload service holds the versions and decides who may see and
// change them (the owner and admins); the edge checks that someone is
// signed in, reads the body strictly and translates HTTP.
type versionsAPI struct {
	upload uploadapi.Client
	id     *identity
	exps   *experimentsAPI
}

func (x *versionsAPI) routes(app *fiber.App) {
	app.Get("/api/experiments/:slug/versions", x.id.requireUser, x.list)
	app.Post("/api/experiments/:slug/rollback", x.id.requireUser, x.rollback)
}

func (x *versionsAPI) list(c *fiber.Ctx) error {
	slug, err := slugParam(c, "slug")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), grantCallTimeout)
	defer cancel()
	res, err := contract.AskAgain(ctx, askAttempt, func(ctx context.Context) (uploadapi.Versions, error) {
		return x.upload.Versions(ctx, uploadapi.VersionsQuery{Slug: slug, Caller: x.id.caller(c)})
	})
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(res)
}

// rollback answers 200 with the experiment as the catalogue now has it;
// "changed" is false when the version was current already.
func (x *versionsAPI) rollback(c *fiber.Ctx) error {
	slug, err := slugParam(c, "slug")
	if err != nil {
		return err
	}
	var req struct {
		Version json.RawMessage `json:"version"`
	}
	if err := jsonBody(c, &req); err != nil {
		return err
	}
	version, err := versionNumber(req.Version)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), rollbackTimeout)
	defer cancel()
	// Asked again when an ask got no answer: a rollback to the version
	// that is current already changes nothing.
	res, err := contract.AskAgain(ctx, changeAttempt, func(ctx context.Context) (uploadapi.RollbackResult, error) {
		return x.upload.Rollback(ctx, uploadapi.Rollback{Slug: slug, Version: version, Caller: x.id.caller(c)})
	})
	if err != nil {
		return err
	}
	// Read back, so that the answer (and this edge's next request) shows
	// the version made current without waiting for the event.
	rctx, rcancel := context.WithTimeout(c.UserContext(), readBackTimeout)
	defer rcancel()
	e, err := x.exps.catalog.refresh(rctx, res.Experiment.Slug)
	if err != nil || e == nil {
		return apierr.Wrap(apierr.CodeUnavailable, err, "the experiment was rolled back but could not be read back")
	}
	return c.JSON(fiber.Map{"experiment": x.exps.viewOf(c, e), "from": res.From, "changed": res.Changed, "warnings": res.Warnings})
}

// versionNumber is the body's version: a JSON integer. Its range (1 up,
// and kept) is the upload service's to decide.
func versionNumber(raw json.RawMessage) (int, error) {
	raw = bytes.TrimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return 0, apierr.New(apierr.CodeValidationFailed, `version is required: {"version": 2}`).OnField("/version")
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	var ne *strconv.NumError
	switch {
	case err == nil && int64(int(n)) == n:
		return int(n), nil
	case errors.As(err, &ne) && errors.Is(ne.Err, strconv.ErrRange), err == nil:
		return 0, apierr.New(apierr.CodeValidationFailed, "version %.40s is out of range", raw).OnField("/version")
	}
	return 0, apierr.New(apierr.CodeValidationFailed, `version must be a whole number, like {"version": 2}`).OnField("/version")
}
