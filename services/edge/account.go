package edge

import (
	"context"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authapi"
	"github.com/gnome-platform/gnome/libs/authz"
	"github.com/gnome-platform/gnome/libs/ratelimit"
)

// accountAPI is the signed-in user's own page (GET /account: email, roles,
// personal API tokens, password change) and the password change itself.
// The page's token forms call /api/tokens with fetch (the secret is shown
// once, in the page, never in a URL or a later response); the password
// form posts with the CSRF field like every other form.
type accountAPI struct {
	auth    authapi.Client
	id      *identity
	limiter *ratelimit.Limiter
	pages   *renderer
}

func (a *accountAPI) routes(app *fiber.App) {
	app.Get("/account", a.id.requireUser, a.accountPage)
	// Guessing the current password is guessing a sign-in: the same limit,
	// counted together with sign-in.
	app.Post("/api/me/password", limit(a.limiter, ratelimit.LoginPost), a.id.requireUser, a.changePassword)
}

// accountView is what pages/account.html shows.
type accountView struct {
	page
	Email     string
	Roles     []string
	Tokens    []tokenRow
	TokensErr string
	// Notice and PasswordErr answer the password form.
	Notice      string
	PasswordErr string
	// AllRoles are the roles a new token may carry, the user's own.
	AllRoles []string
}

// tokenRow is one personal token as the page lists it.
type tokenRow struct {
	ID, Name, Roles, Created, Expires, LastUsed string
	Expired                                     bool
}

func (a *accountAPI) accountPage(c *fiber.Ctx) error {
	return a.render(c, fiber.StatusOK, accountView{Notice: noticeOf(c.Query("done"))})
}

func noticeOf(done string) string {
	if done == "password" {
		return "Your password was changed. Your other sessions have ended."
	}
	return ""
}

func (a *accountAPI) render(c *fiber.Ctx, status int, v accountView) error {
	cl := claimsOf(c)
	v.Title = "Your account"
	v.Email = cl.Email
	v.Roles = cl.Roles
	for _, r := range []string{authz.RoleAdmin, authz.RoleDeveloper, authz.RoleUser} {
		if cl.HasRole(r) {
			v.AllRoles = append(v.AllRoles, r)
		}
	}
	list, err := a.auth.Tokens(c.UserContext(), authapi.TokensList{Actor: actorOf(c)})
	if err != nil {
		// The rest of the page still serves; the list says why it is empty.
		v.TokensErr = "Your API tokens cannot be listed right now (" + string(apierr.From(err).Code) + ")."
	}
	now := time.Now()
	for _, t := range list.Tokens {
		row := tokenRow{ID: t.ID, Name: t.Name, Roles: strings.Join(t.Roles, ", "), Created: t.CreatedAt.UTC().Format("2006-01-02 15:04"),
			Expires: "never", LastUsed: "never"}
		if t.ExpiresAt != nil {
			row.Expires = t.ExpiresAt.UTC().Format("2006-01-02")
			row.Expired = t.ExpiresAt.Before(now)
		}
		if t.LastUsedAt != nil {
			row.LastUsed = t.LastUsedAt.UTC().Format("2006-01-02 15:04")
		}
		v.Tokens = append(v.Tokens, row)
	}
	return a.pages.renderView(c, status, "account", &v.page, &v)
}

// passwordChange is the body of POST /api/me/password.
type passwordChange struct {
	Current string `json:"current_password"`
	New     string `json:"new_password"`
}

// changePassword takes JSON (scripts: 200 with the new session's expiry)
// or the account page's form (303 back to the page, or the page with the
// refusal). The caller's other sessions end; a caller signed in by cookie
// gets the new session's cookie, so that this browser stays signed in.
func (a *accountAPI) changePassword(c *fiber.Ctx) error {
	var req passwordChange
	ct := strings.ToLower(c.Get(fiber.HeaderContentType))
	isForm := strings.HasPrefix(ct, fiber.MIMEApplicationForm)
	if isForm {
		if len(c.Body()) > formBodyMax {
			return apierr.New(apierr.CodePayloadTooLarge, "the body is over %d bytes", formBodyMax)
		}
		req.Current, req.New = c.FormValue("current_password"), c.FormValue("new_password")
		if c.FormValue("confirm_password") != req.New {
			return a.render(c, fiber.StatusUnprocessableEntity, accountView{PasswordErr: "The new password and its confirmation differ."})
		}
	} else if err := jsonBody(c, &req); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), hashCallTimeout)
	defer cancel()
	sess, err := a.auth.ChangePassword(ctx, authapi.PasswordChange{Actor: actorOf(c), Current: req.Current, New: req.New})
	if err != nil {
		ae := apierr.From(err)
		if isForm && (ae.Code == apierr.CodeInvalidCredentials || ae.Code == apierr.CodeValidationFailed) {
			return a.render(c, ae.Code.Status(), accountView{PasswordErr: ae.Message})
		}
		return err
	}
	if byCookie, _ := c.Locals(localByCook).(bool); byCookie {
		a.id.setSessionCookie(c, sess.Token, sess.ExpiresAt)
	}
	if isForm {
		return c.Redirect("/account?done=password", fiber.StatusSeeOther)
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(fiber.Map{"status": "changed", "expires_at": sess.ExpiresAt})
}
