package edge

import (
	"context"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/gnome-platform/gnome/libs/authapi"
)

// permCallTimeout bounds a call to the auth service about permissions.
const permCallTimeout = 15 * time.Second

// permissionsAPI is who holds which action on an experiment's custom
// resource (its manifest's auth_policy.custom_resource and custom_actions).
// The auth service owns the shared policy and decides who may write what
// (the owner only the experiment's own resource, admins any); the edge
// only checks that someone is signed in and translates HTTP. Every edge
// sees a change through the policy watcher, within moments.
type permissionsAPI struct {
	auth authapi.Client
	id   *identity
}

func (x *permissionsAPI) routes(app *fiber.App) {
	app.Get("/api/experiments/:slug/permissions", x.id.requireUser, x.list)
	app.Post("/api/experiments/:slug/permissions", x.id.requireUser, x.grant)
	app.Delete("/api/experiments/:slug/permissions/:email", x.id.requireUser, x.revoke)
}

func (x *permissionsAPI) list(c *fiber.Ctx) error {
	slug, err := slugParam(c, "slug")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), permCallTimeout)
	defer cancel()
	res, err := x.auth.Perms(ctx, authapi.PermsList{Actor: actorOf(c), Slug: slug})
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(res)
}

// grant answers 201 when it gave an action the user did not hold, 200
// when they held every one already.
func (x *permissionsAPI) grant(c *fiber.Ctx) error {
	slug, err := slugParam(c, "slug")
	if err != nil {
		return err
	}
	var req struct {
		Email   string   `json:"email"`
		Actions []string `json:"actions"`
	}
	if err := jsonBody(c, &req); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), permCallTimeout)
	defer cancel()
	res, err := x.auth.PermsGrant(ctx, authapi.PermsGrant{Actor: actorOf(c), Slug: slug, Email: req.Email, Actions: req.Actions})
	if err != nil {
		return err
	}
	status := fiber.StatusOK
	if len(res.Changed) > 0 {
		status = fiber.StatusCreated
	}
	return c.Status(status).JSON(res)
}

// revoke takes ?action= from the user, or every action they hold on the
// resource without it.
func (x *permissionsAPI) revoke(c *fiber.Ctx) error {
	slug, err := slugParam(c, "slug")
	if err != nil {
		return err
	}
	email, err := pathEmail(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), permCallTimeout)
	defer cancel()
	res, err := x.auth.PermsRevoke(ctx, authapi.PermsRevoke{Actor: actorOf(c), Slug: slug, Email: email, Action: c.Query("action")})
	if err != nil {
		return err
	}
	return c.JSON(res)
}
