package edge

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/gnome-platform/gnome/libs/httpx"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

// grantCallTimeout bounds a call to the upload service about grants.
const grantCallTimeout = 15 * time.Second

// grantsAPI is the grants of experiments' data to other experiments'
// reads. The upload service holds them and decides who may do what; the
// edge only checks that someone is signed in and translates HTTP.
type grantsAPI struct {
	upload uploadapi.Client
	id     *identity
}

func (x *grantsAPI) routes(app *fiber.App) {
	app.Get("/api/experiments/:slug/grants", x.id.requireUser, x.list)
	app.Post("/api/experiments/:slug/grants", x.id.requireUser, x.grant)
	app.Delete("/api/experiments/:slug/grants/:reader", x.id.requireUser, x.revoke)
}

// slugParam is the path's slug, or 404 when it is shaped like none.
func slugParam(c *fiber.Ctx, name string) (string, error) {
	s := c.Params(name)
	if !httpx.SlugPattern.MatchString(s) {
		return "", httpx.NotFound("no experiment %q", s)
	}
	return s, nil
}

func (x *grantsAPI) list(c *fiber.Ctx) error {
	slug, err := slugParam(c, "slug")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), grantCallTimeout)
	defer cancel()
	res, err := x.upload.Grants(ctx, uploadapi.GrantsQuery{Slug: slug, Caller: x.id.caller(c)})
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(res)
}

// grant answers 201 with a new grant, 200 with one that existed.
func (x *grantsAPI) grant(c *fiber.Ctx) error {
	slug, err := slugParam(c, "slug")
	if err != nil {
		return err
	}
	var req struct {
		To string `json:"to"`
	}
	if err := jsonBody(c, &req); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), grantCallTimeout)
	defer cancel()
	res, err := x.upload.Grant(ctx, uploadapi.GrantRequest{Slug: slug, To: req.To, Caller: x.id.caller(c)})
	if err != nil {
		return err
	}
	status := fiber.StatusOK
	if res.Created {
		status = fiber.StatusCreated
	}
	return c.Status(status).JSON(fiber.Map{"grant": res.Grant, "created": res.Created})
}

func (x *grantsAPI) revoke(c *fiber.Ctx) error {
	slug, err := slugParam(c, "slug")
	if err != nil {
		return err
	}
	reader := c.Params("reader")
	if !httpx.SlugPattern.MatchString(reader) {
		return httpx.NotFound("%q has no grant to %q", slug, reader)
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), grantCallTimeout)
	defer cancel()
	g, err := x.upload.Revoke(ctx, uploadapi.RevokeRequest{Slug: slug, Reader: reader, Caller: x.id.caller(c)})
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"revoked": g})
}
