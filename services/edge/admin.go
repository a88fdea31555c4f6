package edge

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authapi"
)

// adminAPI is the administration of users and roles, and the admin page,
// which also lists recent exports.
type adminAPI struct {
	auth    authapi.Client
	id      *identity
	pages   *renderer
	exports *exportsAPI
}

func (a *adminAPI) routes(app *fiber.App) {
	app.Get("/admin", a.id.requireAdmin, a.adminPage)
	app.Get("/admin/api/users", a.id.requireAdmin, a.listUsers)
	app.Post("/admin/api/users", a.id.requireAdmin, a.createUser)
	app.Patch("/admin/api/users/:email", a.id.requireAdmin, a.updateUser)
	app.Post("/admin/api/users/:email/roles/:role", a.id.requireAdmin, a.roleChange(a.auth.GrantRole))
	app.Delete("/admin/api/users/:email/roles/:role", a.id.requireAdmin, a.roleChange(a.auth.RevokeRole))
}

func (a *adminAPI) adminPage(c *fiber.Ctx) error {
	list, err := a.auth.Users(c.UserContext(), actorOf(c))
	if err != nil {
		return err
	}
	exps, expErr := a.recentExports(c)
	return a.pages.render(c, fiber.StatusOK, "admin", page{Title: "Administration", Users: list.Users, Exports: exps, ExportsError: expErr})
}

// recentExports are the recent exports the admin page lists; the page
// still renders, with a note, when the export service does not answer.
func (a *adminAPI) recentExports(c *fiber.Ctx) ([]exportView, string) {
	list, err := a.exports.logs(c, "", 50)
	if err != nil {
		return nil, fmt.Sprintf("Exports are unavailable right now (%s).", apierr.From(err).Code)
	}
	return viewsOfExports(list, time.Now()), ""
}

func (a *adminAPI) listUsers(c *fiber.Ctx) error {
	list, err := a.auth.Users(c.UserContext(), actorOf(c))
	if err != nil {
		return err
	}
	return c.JSON(list)
}

func (a *adminAPI) createUser(c *fiber.Ctx) error {
	var req struct {
		Email    string   `json:"email"`
		Password string   `json:"password"`
		Roles    []string `json:"roles"`
	}
	if err := jsonBody(c, &req); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), hashCallTimeout)
	defer cancel()
	u, err := a.auth.CreateUser(ctx, authapi.CreateUser{Actor: actorOf(c), Email: req.Email, Password: req.Password, Roles: req.Roles})
	if err != nil {
		return err
	}
	return c.Status(fiber.StatusCreated).JSON(u)
}

func (a *adminAPI) updateUser(c *fiber.Ctx) error {
	var req struct {
		Disabled *bool `json:"disabled"`
	}
	if err := jsonBody(c, &req); err != nil {
		return err
	}
	email, err := pathEmail(c)
	if err != nil {
		return err
	}
	u, err := a.auth.UpdateUser(c.UserContext(), authapi.UpdateUser{Actor: actorOf(c), Email: email, Disabled: req.Disabled})
	if err != nil {
		return err
	}
	return c.JSON(u)
}

func (a *adminAPI) roleChange(change func(context.Context, authapi.RoleChange) (authapi.User, error)) fiber.Handler {
	return func(c *fiber.Ctx) error {
		email, err := pathEmail(c)
		if err != nil {
			return err
		}
		u, err := change(c.UserContext(), authapi.RoleChange{Actor: actorOf(c), Email: email, Role: c.Params("role")})
		if err != nil {
			return err
		}
		return c.JSON(u)
	}
}

// pathEmail is the user the path names, escaped as a path segment.
func pathEmail(c *fiber.Ctx) (string, error) {
	email, err := url.PathUnescape(c.Params("email"))
	if err != nil {
		return "", apierr.New(apierr.CodeBadRequest, "the email in the path is not valid")
	}
	return email, nil
}
