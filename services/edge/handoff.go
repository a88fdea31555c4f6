package edge

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authapi"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/httpx"
)

// The hand-off carries a visitor's identity from the platform's origin to
// an experiment's, without the platform's cookie ever being sent there:
//
//  1. The experiment's origin, seeing a page request without a session,
//     sends the browser to the platform: GET /auth/experiment?slug=&next=.
//  2. The platform, where the visitor's cookie is, asks the auth service
//     for an experiment token of that slug (or, for a visitor who is not
//     signed in and may enter anonymously, for nothing), stores it under a
//     fresh random code in the handoffs bucket (30 s at most, bound to the
//     slug and to next), and redirects to the experiment's origin:
//     GET /_gnome/session?code=.
//  3. The experiment's origin takes the code (a compare-and-delete: it
//     works once), checks it was made for this slug, sets its own host-only
//     cookie with the token and redirects to next.
//
// A code is useless elsewhere: it names one slug, lives seconds, works once,
// and the token it carries is good on that experiment's origin alone.

// handoffTTL bounds a code's life (the bucket forgets it after 30 s too).
const handoffTTL = 30 * time.Second

// handoff is what a code stands for.
type handoff struct {
	Slug    string    `json:"slug"`
	Next    string    `json:"next"`
	Token   string    `json:"token,omitempty"`
	Expires time.Time `json:"expires,omitempty"`
	Created time.Time `json:"created"`
}

// handoffs serves both ends of the hand-off.
type handoffs struct {
	// kv reads through the bucket's leader (bus.LeaderKV): a code is
	// written by one edge and taken by another a moment later.
	kv      jetstream.KeyValue
	auth    authapi.Client
	id      *identity
	origins *origins
	// access applies an experiment's rules (experimentsAPI.access).
	catalog *catalog
}

func codeKey(code string) string {
	sum := sha256.Sum256([]byte(code))
	return hex.EncodeToString(sum[:])
}

// start is GET /auth/experiment?slug=&next=[&login=1] on the platform's
// origin.
func (h *handoffs) start(c *fiber.Ctx) error {
	slug := c.Query("slug")
	if !httpx.SlugPattern.MatchString(slug) {
		return httpx.NotFound("no experiment %q", slug)
	}
	e, err := h.catalog.get(c.UserContext(), slug)
	if err != nil {
		return apierr.Wrap(apierr.CodeUnavailable, err, "experiments are unavailable right now")
	}
	if e == nil {
		return httpx.NotFound("no experiment %q", slug)
	}
	if h.origins.unreachableFrom(httpx.Host(c)) {
		return apierr.New(apierr.CodeUnavailable,
			"experiments are served from their own origins (%s), which only this machine can reach; the operator must set EXPERIMENT_ORIGIN",
			h.origins.experiment("{slug}"))
	}
	next := safeNext(c.Query("next"))
	if next == "/" {
		next = "/experiments/" + slug + "/"
	}
	rec := handoff{Slug: slug, Next: next, Created: time.Now()}
	claims := claimsOf(c)
	if claims == nil {
		viewerless := experiments.Decide(e.rules, nil, h.id.enforcer, experiments.Open)
		if c.Query("login") != "" || viewerless == experiments.NeedLogin {
			return c.Redirect(h.id.loginURL(c), fiber.StatusSeeOther)
		}
	} else {
		token, _ := c.Locals(localToken).(string)
		ctx, cancel := context.WithTimeout(c.UserContext(), 10*time.Second)
		defer cancel()
		sess, err := h.auth.ExperimentToken(ctx, authapi.ExperimentTokenRequest{Token: token, Slug: slug})
		if err != nil {
			return err
		}
		rec.Token, rec.Expires = sess.Token, sess.ExpiresAt
	}
	code, err := h.put(c.UserContext(), rec)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderReferrerPolicy, "no-referrer")
	return c.Redirect(h.origins.experiment(slug)+"/_gnome/session?code="+code, fiber.StatusSeeOther)
}

// put stores rec under a new code.
func (h *handoffs) put(ctx context.Context, rec handoff) (string, error) {
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return "", fmt.Errorf("hand-off code: %w", err)
	}
	code := base64.RawURLEncoding.EncodeToString(raw)
	b, err := json.Marshal(rec)
	if err != nil {
		return "", fmt.Errorf("encode hand-off: %w", err)
	}
	if _, err := h.kv.Create(ctx, codeKey(code), b); err != nil {
		return "", apierr.Wrap(apierr.CodeUnavailable, err, "the hand-off to the experiment could not be stored")
	}
	return code, nil
}

// take returns the hand-off of code and deletes it; a code works once.
func (h *handoffs) take(ctx context.Context, code string) (*handoff, error) {
	if len(code) != 43 {
		return nil, nil
	}
	key := codeKey(code)
	e, err := h.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, apierr.Wrap(apierr.CodeUnavailable, err, "the hand-off could not be read")
	}
	// Only the first of two takers deletes the revision it read.
	if err := h.kv.Delete(ctx, key, jetstream.LastRevision(e.Revision())); err != nil {
		return nil, nil
	}
	var rec handoff
	if json.Unmarshal(e.Value(), &rec) != nil || time.Since(rec.Created) > handoffTTL {
		return nil, nil
	}
	return &rec, nil
}

// finish is GET /_gnome/session?code= on an experiment's origin.
func (h *handoffs) finish(c *fiber.Ctx) error {
	slug := expSlugOf(c)
	c.Set(fiber.HeaderCacheControl, "no-store")
	c.Set(fiber.HeaderReferrerPolicy, "no-referrer")
	rec, err := h.take(c.UserContext(), c.Query("code"))
	if err != nil {
		return err
	}
	if rec == nil || rec.Slug != slug {
		return apierr.New(apierr.CodeBadRequest,
			"this sign-in link has expired or was already used; open the experiment again from its address")
	}
	if rec.Token == "" {
		h.id.setExperimentCookie(c, anonymousSession, time.Now().Add(anonymousSessionTTL))
	} else {
		h.id.setExperimentCookie(c, rec.Token, rec.Expires)
	}
	return c.Redirect(rec.Next, fiber.StatusSeeOther)
}

// logout is POST /_gnome/logout on an experiment's origin: the visitor's
// platform session ends too, everywhere. Forms are sent back to the
// experiment, JSON callers get 204.
func (h *handoffs) logout(c *fiber.Ctx) error {
	slug := expSlugOf(c)
	if token := c.Cookies(h.id.sessionCookie(c)); token != "" && token != anonymousSession {
		ctx, cancel := context.WithTimeout(c.UserContext(), 10*time.Second)
		defer cancel()
		if err := h.auth.EndSession(ctx, authapi.EndSession{Token: token, Slug: slug}); err != nil &&
			apierr.From(err).Code != apierr.CodeUnauthenticated {
			return err
		}
	}
	h.id.clearExperimentCookie(c)
	if strings.HasPrefix(strings.ToLower(c.Get(fiber.HeaderContentType)), fiber.MIMEApplicationForm) {
		return c.Redirect("/experiments/"+slug+"/", fiber.StatusSeeOther)
	}
	return c.SendStatus(fiber.StatusNoContent)
}
