package edge

import (
	"context"
	"html/template"
	"net/url"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authapi"
	"github.com/gnome-platform/gnome/libs/ratelimit"
)

// Password recovery (docs/architecture.md, "Accounts"): an administrator
// resets a user's password (POST /admin/api/users/{email}/password-reset)
// and passes on the one-time link the answer holds; the user opens it
// (GET /auth/reset) and chooses a new password (POST /auth/reset), which
// signs them in. The code rides in the link's fragment, so it reaches no
// server or proxy log; the page's script moves it into the form.

var (
	// resetIssue bounds an administrator's resets per client: each one ends
	// a user's sessions.
	resetIssue = ratelimit.Rule{Name: "password_reset_issue", Limit: 10, Window: time.Minute}
	// resetPost bounds attempts at a code as sign-in is bounded, although a
	// 256-bit code cannot be guessed: it also slows a script hashing new
	// passwords on the auth service.
	resetPost = ratelimit.Rule{Name: "password_reset_post", Limit: 5, Window: time.Minute}
)

func init() {
	pageTemplates["reset"] = template.Must(template.New("reset").ParseFS(pageFS, "pages/layout.html", "pages/reset.html"))
}

type passwordResetAPI struct {
	auth    authapi.Client
	id      *identity
	limiter *ratelimit.Limiter
	pages   *renderer
	origins *origins
}

// resetView is what pages/reset.html shows.
type resetView struct {
	page
	Code string
}

func (a *passwordResetAPI) routes(app *fiber.App) {
	app.Post("/admin/api/users/:email/password-reset", limit(a.limiter, resetIssue), a.id.requireAdmin, a.issue)
	app.Get("/auth/reset", limit(a.limiter, ratelimit.LoginPage), a.resetPage)
	app.Post("/auth/reset", limit(a.limiter, resetPost), a.complete)
}

// issue answers 200 with the link and the bare code, shown this once
// (never stored in a readable form, never logged).
func (a *passwordResetAPI) issue(c *fiber.Ctx) error {
	email, err := url.PathUnescape(c.Params("email"))
	if err != nil {
		return apierr.New(apierr.CodeValidationFailed, "the email in the path is not valid").OnField("/email")
	}
	res, err := a.auth.ResetPassword(c.UserContext(), authapi.PasswordReset{Actor: actorOf(c), Email: email})
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(fiber.Map{
		"email":      res.Email,
		"reset_url":  a.origins.platform + "/auth/reset#code=" + res.Code,
		"code":       res.Code,
		"expires_at": res.ExpiresAt,
	})
}

func (a *passwordResetAPI) resetPage(c *fiber.Ctx) error {
	v := &resetView{page: page{Title: "Choose a new password"}}
	return a.pages.renderView(c, fiber.StatusOK, "reset", &v.page, v)
}

// resetBody is the JSON body of POST /auth/reset.
type resetBody struct {
	Code string `json:"code"`
	New  string `json:"new_password"`
}

// complete takes the page's form (303 to the account page, signed in, or
// the page again with the refusal) or JSON (200 with the user).
func (a *passwordResetAPI) complete(c *fiber.Ctx) error {
	var req resetBody
	ct := strings.ToLower(c.Get(fiber.HeaderContentType))
	isForm := strings.HasPrefix(ct, fiber.MIMEApplicationForm)
	again := func(status int, msg string) error {
		v := &resetView{page: page{Title: "Choose a new password", Error: msg}, Code: req.Code}
		return a.pages.renderView(c, status, "reset", &v.page, v)
	}
	if isForm {
		if len(c.Body()) > formBodyMax {
			return apierr.New(apierr.CodePayloadTooLarge, "the body is over %d bytes", formBodyMax)
		}
		req.Code, req.New = strings.TrimSpace(c.FormValue("code")), c.FormValue("new_password")
		if c.FormValue("confirm_password") != req.New {
			return again(fiber.StatusUnprocessableEntity, "The new password and its confirmation differ.")
		}
	} else if err := jsonBody(c, &req); err != nil {
		return err
	}
	if req.Code == "" {
		return apierr.New(apierr.CodeValidationFailed, "the reset code is required").OnField("/code")
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), hashCallTimeout)
	defer cancel()
	sess, err := a.auth.CompleteReset(ctx, authapi.PasswordResetComplete{Code: req.Code, New: req.New})
	if err != nil {
		ae := apierr.From(err)
		if isForm && (ae.Code == apierr.CodeGone || ae.Code == apierr.CodeValidationFailed) {
			return again(ae.Code.Status(), ae.Message)
		}
		return err
	}
	a.id.setSessionCookie(c, sess.Token, sess.ExpiresAt)
	if isForm {
		return c.Redirect("/account?done=password", fiber.StatusSeeOther)
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(fiber.Map{"user": sess.User, "expires_at": sess.ExpiresAt})
}
