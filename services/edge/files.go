package edge

import (
	"errors"
	"net/url"
	"os"
	"path"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bundle"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/httpx"
)

// staticCacheCtrl has clients revalidate every time: the ETag makes it
// cheap.
const staticCacheCtrl = "no-cache"

// filesAPI is the experiments' web files, served from this instance's
// cache of their bundles (bundles.go).
type filesAPI struct {
	bundles *bundleCache
	// access applies an experiment's rules (experimentsAPI.access).
	access func(experiments.Action) fiber.Handler
}

// serveStatic answers GET and HEAD of /experiments/{slug}/... from the
// current version's bundle: index.html for directories (at the root, or
// static/index.html), a strong ETag, 304 on a matching If-None-Match, and
// the smallest encoding the client accepts.
func (fs *filesAPI) serveStatic(c *fiber.Ctx) error {
	e := entryOf(c)
	b, err := fs.bundles.get(c.UserContext(), e.cfg.Slug, e.cfg.Checksum)
	if err != nil {
		if errors.Is(err, jetstream.ErrObjectNotFound) {
			return apierr.Wrap(apierr.CodeUnavailable, err, "this version's files are not available")
		}
		return apierr.Wrap(apierr.CodeUnavailable, err, "the experiment's files could not be loaded")
	}
	rel, err := url.PathUnescape(c.Params("*"))
	if err != nil {
		return httpx.NotFound("no such file")
	}
	name, redirect := resolve(b, rel)
	if redirect {
		return c.Redirect(c.Path()+"/", fiber.StatusMovedPermanently)
	}
	f := b.files[name]
	if private(e, name) {
		f = nil
	}
	if f == nil {
		return httpx.NotFound("no file %q in experiment %q", rel, e.cfg.Slug)
	}
	c.Set(fiber.HeaderCacheControl, staticCacheCtrl)
	c.Set(fiber.HeaderContentType, f.ctype)
	c.Set("X-Content-Type-Options", "nosniff")
	body, encoding, etag := f.data, "", f.etag
	if f.br != nil || f.gz != nil {
		c.Vary(fiber.HeaderAcceptEncoding)
		var offers []string
		if f.br != nil {
			offers = append(offers, "br")
		}
		if f.gz != nil {
			offers = append(offers, "gzip")
		}
		switch httpx.Negotiate(c.Get(fiber.HeaderAcceptEncoding), offers...) {
		case "br":
			body, encoding, etag = f.br, "br", strings.TrimSuffix(f.etag, `"`)+`-br"`
		case "gzip":
			body, encoding, etag = f.gz, "gzip", strings.TrimSuffix(f.etag, `"`)+`-gz"`
		}
	}
	c.Set(fiber.HeaderETag, etag)
	if matchesETag(c.Get(fiber.HeaderIfNoneMatch), etag) {
		return c.SendStatus(fiber.StatusNotModified)
	}
	if encoding != "" {
		c.Set(fiber.HeaderContentEncoding, encoding)
	}
	if f.data == nil {
		fh, err := os.Open(f.diskPath)
		if err != nil {
			return apierr.Wrap(apierr.CodeUnavailable, err, "the file could not be read")
		}
		return c.SendStream(fh, int(f.size))
	}
	return c.Send(body)
}

// private are the bundle's files that are not web content: the manifest
// (its actor config may hold settings meant for the backend only), Python
// backend sources of the original platform (they hold server-side logic and
// often credentials, whether or not an actor replaced them), and the actor
// module or entry script (the scripts it loads may be shared with the
// pages, so they stay served).
func private(e *entry, name string) bool {
	if name == "manifest.json" || bundle.IsServerSource(name) {
		return true
	}
	if e.manifest == nil || e.manifest.Actor == nil {
		return false
	}
	a := e.manifest.Actor
	return a.Module != "" && path.Clean(a.Module) == name || a.Script != "" && path.Clean(a.Script) == name
}

// resolve maps a request path to a bundle file: "" and paths ending in "/"
// mean their index.html (the root's may live in static/); a directory asked
// for without its slash is redirected to it.
func resolve(b *loadedBundle, raw string) (name string, redirect bool) {
	dir := raw == "" || strings.HasSuffix(raw, "/")
	rel := strings.TrimPrefix(path.Clean("/"+raw), "/")
	switch {
	case rel == "":
		if b.files["index.html"] != nil {
			return "index.html", false
		}
		return "static/index.html", false
	case dir:
		return rel + "/index.html", false
	case b.files[rel] != nil:
		return rel, false
	case b.files[rel+"/index.html"] != nil:
		return "", true
	}
	return rel, false
}

func matchesETag(header, etag string) bool {
	if header == "" {
		return false
	}
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}
