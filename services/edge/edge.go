// Package edge is the platform's HTTP API and pages. It holds no state of its
// own: everything it answers comes from the other services over NATS, from
// JetStream buckets, or from the database.
package edge

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"time"

	"github.com/gofiber/fiber/v2"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authapi"
	"github.com/gnome-platform/gnome/libs/authn"
	"github.com/gnome-platform/gnome/libs/authz"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/exportapi"
	"github.com/gnome-platform/gnome/libs/exportstore"
	"github.com/gnome-platform/gnome/libs/httpx"
	"github.com/gnome-platform/gnome/libs/ratelimit"
	"github.com/gnome-platform/gnome/libs/svc"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

// Name is the service's name on the bus.
const Name = "edge"

// Service is one edge instance: an HTTP server and its presence on the bus.
// It owns the life cycle of what the handlers share; the handlers
// themselves are one small type per resource (accounts.go, admin.go,
// experiments.go, actors.go, files.go, exports.go, health.go), wired
// together in newApp.
type Service struct {
	d       *svc.Deps
	app     *fiber.App
	ln      net.Listener
	srv     *bus.Server
	health  *prober
	served  chan error
	metrics *httpx.Metrics

	auth   authapi.Client
	upload uploadapi.Client
	export exportapi.Client

	id       *identity
	origins  *origins
	handoffs *handoffs
	limiter  *ratelimit.Limiter
	catalog  *catalog
	bundles  *bundleCache
	// exportFiles is the exports object store downloads stream from; it
	// binds to the bucket on first use.
	exportFiles *exportstore.ObjectStore
	cacheDir    string
	// live holds the experiments' live connections (live.go).
	live *liveHub
	// expApp is the experiment origins' routes (experimenthost.go).
	expApp *fiber.App
	// watching keeps the verifier current until Stop.
	stopWatch context.CancelFunc

	// Addr is the address the server listens on, known once started.
	Addr string
	// Only, when set before Start, is the one experiment this edge serves
	// (gnome standalone); see standalone.go.
	Only string
}

// New builds the edge on d; it listens on d.Config.HTTPAddr when started.
func New(d *svc.Deps) *Service {
	c := bus.Client{NC: d.NC}
	return &Service{
		d: d, auth: authapi.Client{T: c}, upload: uploadapi.Client{T: c}, export: exportapi.Client{T: c},
		exportFiles: exportstore.NewObjectStore(d.JS, bus.ObjectExports),
	}
}

// Name is the service's name on the bus.
func (s *Service) Name() string { return Name }

// PlatformURL is the platform's origin (PUBLIC_URL or where it listens),
// known once started.
func (s *Service) PlatformURL() string { return s.origins.platform }

// ExperimentURL is the page of experiment slug on its own origin, known
// once started.
func (s *Service) ExperimentURL(slug string) string {
	return s.origins.experiment(slug) + "/experiments/" + slug + "/"
}

// App is the Fiber application, for in-process tests.
func (s *Service) App() *fiber.App { return s.app }

// Start provisions the edge's bucket, joins the bus, and listens.
func (s *Service) Start(ctx context.Context) error {
	d := s.d
	if err := d.Topology.EnsureBuckets(ctx, bus.BucketRateLimit, bus.BucketRevokedTokens, bus.BucketAuthKeys, bus.BucketUserVersions, bus.BucketHandoffs); err != nil {
		return err
	}
	rl, err := d.Topology.Bucket(ctx, bus.BucketRateLimit)
	if err != nil {
		return fmt.Errorf("open rate-limit bucket: %w", err)
	}
	s.limiter = ratelimit.New(rl)
	ln, err := net.Listen("tcp", d.Config.HTTPAddr)
	if err != nil {
		return fmt.Errorf("HTTP_ADDR: listen on %s: %w", d.Config.HTTPAddr, err)
	}
	if s.origins, err = newOrigins(d.Config, ln.Addr().String()); err != nil {
		_ = ln.Close()
		return err
	}
	handoffKV, err := d.Topology.Bucket(ctx, bus.BucketHandoffs)
	if err != nil {
		_ = ln.Close()
		return fmt.Errorf("open hand-off bucket: %w", err)
	}
	s.id = newIdentity(authn.NewVerifier(), d.Config.IsProduction(), s.origins)
	s.id.personal = newPersonalTokens(s.auth, s.id.verifier)
	stopWatch, err := d.WatchTokens(ctx, s.id.verifier)
	if err != nil {
		_ = ln.Close()
		return err
	}
	s.stopWatch = stopWatch
	if s.id.enforcer, err = authz.New(ctx, d.Store.DB, d.NC, d.Log); err != nil {
		stopWatch()
		_ = ln.Close()
		return err
	}
	if err := s.startExperiments(ctx); err != nil {
		stopWatch()
		s.id.enforcer.Close()
		_ = ln.Close()
		return err
	}
	s.handoffs = &handoffs{kv: bus.LeaderKV{KeyValue: handoffKV, JS: d.JS}, auth: s.auth, id: s.id, origins: s.origins, catalog: s.catalog}
	s.metrics = httpx.NewMetrics(d.Telemetry.Registry)
	registerJetStreamCollector(d)
	s.health = newProber(d)
	s.health.isAdmin = s.id.isAdmin
	s.health.start()
	if s.app, err = s.newApp(); err != nil {
		s.health.stop()
		stopWatch()
		s.id.enforcer.Close()
		s.catalog.stop()
		_ = ln.Close()
		return err
	}
	s.ln = ln
	s.Addr = ln.Addr().String()
	s.served = make(chan error, 1)
	// httpx.Listener closes connections gently, so a refused upload's
	// client reads its 413 instead of a reset.
	go func() { s.served <- s.app.Listener(httpx.Listener(ln)) }()

	srv, err := d.Serve(Name, "HTTP API and pages at "+s.Addr)
	if err != nil {
		_ = s.app.Shutdown()
		s.health.stop()
		return err
	}
	s.srv = srv
	return nil
}

// Stop stops accepting connections, lets requests in flight finish within
// ctx, then leaves the bus.
func (s *Service) Stop(ctx context.Context) error {
	var errs []error
	if s.live != nil {
		// Live connections are hijacked from the HTTP server, which does
		// not wait for them: they close first, telling their actors.
		s.live.stop(ctx)
	}
	if s.app != nil {
		errs = append(errs, s.app.ShutdownWithContext(ctx))
		select {
		case <-s.served:
		case <-ctx.Done():
		}
	}
	if s.srv != nil {
		errs = append(errs, s.srv.Stop(ctx))
	}
	if s.health != nil {
		s.health.stop()
	}
	if s.stopWatch != nil {
		s.stopWatch()
	}
	if s.id != nil && s.id.enforcer != nil {
		s.id.enforcer.Close()
	}
	if s.catalog != nil {
		s.catalog.stop()
	}
	if s.cacheDir != "" {
		_ = os.RemoveAll(s.cacheDir)
	}
	return errors.Join(errs...)
}

// startExperiments opens what serving experiments needs: the catalog of
// experiments, the uploads object store and this instance's bundle cache.
func (s *Service) startExperiments(ctx context.Context) error {
	d := s.d
	if err := d.Topology.EnsureStreams(ctx, bus.StreamEvents); err != nil {
		return err
	}
	if err := d.Topology.EnsureObjectStores(ctx, bus.ObjectUploads, bus.ObjectBundles); err != nil {
		return err
	}
	var err error
	uploads, err := d.Topology.Objects(ctx, bus.ObjectUploads)
	if err != nil {
		return fmt.Errorf("open uploads store: %w", err)
	}
	s.upload.Staging = bus.ObjectStaging{Store: uploads}
	// The bundles are read through the store's leader (bus.Objects); the
	// handle is looked up only to wait for the store to be provisioned.
	if _, err := d.Topology.Objects(ctx, bus.ObjectBundles); err != nil {
		return fmt.Errorf("open bundles store: %w", err)
	}
	s.cacheDir = filepath.Join(d.Config.DataDir, "cache", "edge-"+d.InstanceID)
	if s.bundles, err = newBundleCache(filepath.Join(s.cacheDir, "bundles"), bus.Objects{JS: d.JS, Bucket: bus.ObjectBundles}, d.Log); err != nil {
		return err
	}
	s.catalog = newCatalog(d.Store.Experiments(), d.JS, d.Log)
	return s.catalog.start(ctx)
}

// bodyLimit bounds request bodies outside the upload routes.
const bodyLimit = 4 << 20

// uploadRoutes stream their bodies, bounded by MAX_UPLOAD_SIZE_MB.
var uploadRoutes = map[string]bool{"/api/experiments": true, "/admin/api/upload-experiment": true}

// limitBodies refuses, before anything reads it, a body over bodyLimit
// outside the upload routes, and a body of unknown length there.
func limitBodies(c *fiber.Ctx) error {
	if c.Method() == fiber.MethodPost && uploadRoutes[c.Path()] {
		return c.Next()
	}
	n := c.Request().Header.ContentLength()
	switch {
	case n > bodyLimit:
		return apierr.New(apierr.CodePayloadTooLarge, "the body is over %d bytes", bodyLimit)
	case n == -1:
		return apierr.New(apierr.CodeBadRequest, "send a Content-Length with the body")
	}
	return c.Next()
}

// declaredLimit is the largest body a request may declare: uploads up to
// MAX_UPLOAD_SIZE_MB (and a multipart envelope), anything else bodyLimit.
// A request declaring more is answered 413 before its body is read.
func (s *Service) declaredLimit(method, path string) (int64, error) {
	if method == fiber.MethodPost && uploadRoutes[path] {
		mb := s.d.Config.MaxUploadSizeMB
		return mb<<20 + 64<<10, apierr.New(apierr.CodeBundleTooLarge, "the upload is over the limit of %d MB", mb)
	}
	return bodyLimit, nil
}

// newApp builds the Fiber app: the middleware chain, then the routes.
func (s *Service) newApp() (*fiber.App, error) {
	d := s.d
	logFailure := func(c *fiber.Ctx, err error) {
		d.Log.ErrorContext(c.UserContext(), "request failed", "method", c.Method(), "path", c.Path(), "err", err)
	}
	errHandler := httpx.ErrorHandler(logFailure)
	pages := &renderer{id: s.id, registration: d.Config.EnableRegistration}
	// Browsers on the platform get its error pages (errorpages.go); the
	// experiment origins keep errHandler's plain page.
	platformErrors := httpx.ErrorHandlerWithPages(logFailure, s.errorPage(pages))
	app := fiber.New(fiber.Config{
		AppName:               "g.nome",
		DisableStartupMessage: true,
		ErrorHandler:          platformErrors,
		// /experiments/{slug} and /experiments/{slug}/ are different routes.
		StrictRouting: true,
		// Bodies above this are refused with 413 before a handler runs;
		// uploads stream past it on their own routes.
		BodyLimit: bodyLimit,
		// Uploads stream; every other route is held to bodyLimit by
		// limitBodies before anything reads its body.
		StreamRequestBody:            true,
		DisablePreParseMultipartForm: true,
		ReadTimeout:                  60 * time.Second,
		WriteTimeout:                 120 * time.Second,
		IdleTimeout:                  120 * time.Second,
	})
	onExperiment := func(c *fiber.Ctx) bool { return s.origins.slugOf(httpx.Host(c)) != "" }
	httpx.Install(app, httpx.ChainOptions{
		Log: d.Log, Metrics: s.metrics, TrustedProxies: d.Config.TrustedProxies,
		Production: d.Config.IsProduction(), ErrorHandler: platformErrors, PublicURL: s.origins.publicURL,
		CanonicalOrigin: func(c *fiber.Ctx) string {
			if slug := s.origins.slugOf(httpx.Host(c)); slug != "" {
				return s.origins.experiment(slug)
			}
			return ""
		},
		BodyLimit: s.declaredLimit, IsExperiment: onExperiment,
		FormTargets: []string{httpx.ExperimentSource(s.origins.experiment("{slug}"))},
	})

	exps := &experimentsAPI{upload: s.upload, id: s.id, catalog: s.catalog, pages: pages, maxUploadMB: d.Config.MaxUploadSizeMB}
	actors := &actorsAPI{nc: d.NC, js: d.JS, topology: d.Topology, log: d.Log, access: exps.access, production: s.id.production}
	exps.actors = actors
	exports := &exportsAPI{export: s.export, id: s.id, limiter: s.limiter, access: exps.access, nc: d.NC, files: s.exportFiles}
	health := &healthAPI{probe: s.health}
	accounts := &accountsAPI{auth: s.auth, id: s.id, limiter: s.limiter, pages: pages, registration: d.Config.EnableRegistration}
	admin := &adminAPI{auth: s.auth, id: s.id, pages: pages, exports: exports, catalog: s.catalog}
	files := &filesAPI{bundles: s.bundles, access: exps.access}
	subAuth, err := newExpAuth(s.auth, s.id, s.limiter, s.catalog, d.Config.SecretKey)
	if err != nil {
		panic(err) // HKDF fails only for outputs over 8160 bytes: a 32-byte key never does
	}
	links := &linksAPI{log: d.Log, auth: s.auth, id: s.id, limiter: s.limiter, origins: s.origins}
	live, err := newLiveHub(d.NC, d.Log, d.Config.Live, actors, s.catalog, s.id, s.origins, d.Telemetry.Registry)
	if err != nil {
		return nil, fmt.Errorf("live channels: %w", err)
	}
	s.live = live
	expApp := s.newExperimentApp(errHandler, files, actors, subAuth, links, live)

	// Fiber matches routes in the order they are registered, so this order
	// is part of the API: requests for an experiment's origin leave for its
	// own routes (experimenthost.go) before any platform route, and the
	// single-experiment rules come before every platform route.
	app.Use(limitBodies, s.experimentHost(expApp), s.id.identify, demoReadOnly, s.id.csrf)
	if s.Only != "" {
		app.Use(standalone{only: s.Only, experiments: exps}.onlyExperiment)
	}
	health.routes(app)
	newAPIDocs(s.origins, d.Config.EnableRegistration).routes(app)
	accounts.routes(app)
	(&tokensAPI{auth: s.auth, id: s.id}).routes(app)
	(&accountAPI{auth: s.auth, id: s.id, limiter: s.limiter, pages: pages}).routes(app)
	(&passwordResetAPI{auth: s.auth, id: s.id, limiter: s.limiter, pages: pages, origins: s.origins}).routes(app)
	subAuth.ownerRoutes(app)
	links.routes(app)
	app.Get("/auth/experiment", limit(s.limiter, ratelimit.Handoff), s.handoffs.start)
	admin.routes(app)
	exps.routes(app)
	(&grantsAPI{upload: s.upload, id: s.id}).routes(app)
	(&secretsAPI{upload: s.upload, id: s.id}).routes(app)
	(&versionsAPI{upload: s.upload, id: s.id, exps: exps}).routes(app)
	(&logsAPI{js: d.JS, topology: d.Topology, id: s.id, access: exps.access}).routes(app)
	(&permissionsAPI{auth: s.auth, id: s.id}).routes(app)
	app.All("/experiments/:slug", s.toExperimentOrigin)
	app.All("/experiments/:slug/*", s.toExperimentOrigin)
	exports.routes(app)
	return app, nil
}
