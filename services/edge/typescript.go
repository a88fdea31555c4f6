package edge

import (
	"github.com/gofiber/fiber/v2"

	"github.com/gnome-platform/gnome/libs/actorapi"
)

// typeScriptContentType is how gnome.d.ts is served: TypeScript's media
// type, as editors and the TypeScript tooling fetch it.
const typeScriptContentType = "application/typescript; charset=utf-8"

// serveTypeScript serves /_gnome/gnome.d.ts, the declarations of a
// JavaScript actor's API for editors (docs/actors.md, section 9), on an
// experiment's origin beside live.js and cached like it.
func serveTypeScript(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, typeScriptContentType)
	c.Set(fiber.HeaderCacheControl, "public, max-age=300")
	return c.Send(actorapi.TypeScript)
}
