package edge

import (
	"strings"

	"github.com/gofiber/fiber/v2"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authz"
)

// demoReadOnly keeps a platform token with the role demo (ENABLE_DEMO's
// account, or anyone an admin gave the role) to looking: on the platform's
// origin it may sign in and out and read, but not upload, change, delete,
// grant, export or download a package (which carries data). The services
// behind refuse most of these by role or ownership already; this is the
// one place that says so for every route, present and future.
func demoReadOnly(c *fiber.Ctx) error {
	cl := claimsOf(c)
	if cl == nil || cl.Kind != "" || !cl.HasRole(authz.RoleDemo) {
		return c.Next()
	}
	path := c.Path()
	switch c.Method() {
	case fiber.MethodGet, fiber.MethodHead, fiber.MethodOptions:
		if !strings.HasPrefix(path, "/api/package-") && !strings.HasPrefix(path, "/api/exports/") {
			return c.Next()
		}
	default:
		if path == "/auth/logout" || path == "/auth/login" {
			return c.Next()
		}
	}
	return apierr.New(apierr.CodeForbidden, "the demo account may look at experiments but not change, upload or export anything")
}
