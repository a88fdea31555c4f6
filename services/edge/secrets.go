package edge

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

// secretBodyMax bounds the body of a secret's PUT: a value of
// uploadapi.MaxSecretValue bytes, each of which JSON may spell as a
// six-byte escape, and the object around it.
const secretBodyMax = 6*uploadapi.MaxSecretValue + 1024

// secretsAPI is the experiments' secrets, write-only. The upload service
// holds them and decides who may do what; the edge checks that someone is
// signed in, reads the body without ever echoing it, and translates HTTP.
type secretsAPI struct {
	upload uploadapi.Client
	id     *identity
}

func (x *secretsAPI) routes(app *fiber.App) {
	app.Get("/api/experiments/:slug/secrets", x.id.requireUser, x.list)
	app.Put("/api/experiments/:slug/secrets/:name", x.id.requireUser, x.set)
	app.Delete("/api/experiments/:slug/secrets/:name", x.id.requireUser, x.remove)
}

func (x *secretsAPI) list(c *fiber.Ctx) error {
	slug, err := slugParam(c, "slug")
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), grantCallTimeout)
	defer cancel()
	res, err := x.upload.ListSecrets(ctx, uploadapi.SecretsQuery{Slug: slug, Caller: x.id.caller(c)})
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.JSON(res)
}

// set answers 201 with a new secret, 200 with a replaced one; never the
// value.
func (x *secretsAPI) set(c *fiber.Ctx) error {
	slug, err := slugParam(c, "slug")
	if err != nil {
		return err
	}
	name := c.Params("name")
	if !uploadapi.SecretNameSyntax.MatchString(name) {
		return apierr.New(apierr.CodeValidationFailed,
			"the path's name is not a secret's name: an upper-case letter, then up to 63 upper-case letters, digits and '_' (like API_KEY)").OnField("/name")
	}
	value, err := secretBody(c)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), grantCallTimeout)
	defer cancel()
	res, err := x.upload.SetSecret(ctx, uploadapi.SecretSet{Slug: slug, Name: name, Value: value, Caller: x.id.caller(c)})
	if err != nil {
		return err
	}
	status := fiber.StatusOK
	if res.Created {
		status = fiber.StatusCreated
	}
	c.Set(fiber.HeaderCacheControl, "no-store")
	return c.Status(status).JSON(res)
}

func (x *secretsAPI) remove(c *fiber.Ctx) error {
	slug, err := slugParam(c, "slug")
	if err != nil {
		return err
	}
	name := c.Params("name")
	if !uploadapi.SecretNameSyntax.MatchString(name) {
		return apierr.New(apierr.CodeNotFound, "experiment %q has no such secret", slug)
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), grantCallTimeout)
	defer cancel()
	gone, err := x.upload.DeleteSecret(ctx, uploadapi.SecretDelete{Slug: slug, Name: name, Caller: x.id.caller(c)})
	if err != nil {
		return err
	}
	return c.JSON(fiber.Map{"deleted": gone})
}

// secretBody is the value of a {"value": "..."} body. Its errors say what
// is wrong with the body's shape but never quote it: the decoder's own
// messages may hold a piece of the value.
func secretBody(c *fiber.Ctx) (string, error) {
	if !strings.HasPrefix(strings.ToLower(c.Get(fiber.HeaderContentType)), fiber.MIMEApplicationJSON) {
		return "", apierr.New(apierr.CodeUnsupportedMediaType, `send application/json: {"value": "..."}`)
	}
	body := c.Body()
	if len(body) > secretBodyMax {
		return "", apierr.New(apierr.CodePayloadTooLarge, "the body is over %d bytes; a secret's value is at most %d", secretBodyMax, uploadapi.MaxSecretValue).OnField("/value")
	}
	if !utf8.Valid(body) {
		return "", apierr.New(apierr.CodeInvalidJson, "the body is not valid UTF-8")
	}
	var req struct {
		Value *string `json:"value"`
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var ute *json.UnmarshalTypeError
		switch {
		case errors.As(err, &ute) && ute.Field == "value":
			return "", apierr.New(apierr.CodeValidationFailed, "value must be a string").OnField("/value")
		case errors.As(err, &ute):
			return "", apierr.New(apierr.CodeInvalidJson, `the body must be an object: {"value": "..."}`)
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return "", apierr.New(apierr.CodeInvalidJson, `the body takes one field: {"value": "..."}`)
		case errors.Is(err, io.EOF):
			return "", apierr.New(apierr.CodeInvalidJson, `the body is empty; send {"value": "..."}`)
		}
		return "", apierr.New(apierr.CodeInvalidJson, `the body is not valid JSON; send {"value": "..."}`)
	}
	if dec.More() {
		return "", apierr.New(apierr.CodeInvalidJson, "the body has data after its JSON value")
	}
	if req.Value == nil {
		return "", apierr.New(apierr.CodeValidationFailed, `value is required: {"value": "..."}`).OnField("/value")
	}
	return *req.Value, nil
}
