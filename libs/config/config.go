// Package config reads the platform's settings from the environment into one
// typed value and validates it once, at start.
package config

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Environments the platform knows.
const (
	Development = "development"
	Production  = "production"
)

// MinSecretKeyLen is the shortest SECRET_KEY accepted in production.
const MinSecretKeyLen = 32

// Config is every setting of the platform. Zero values are never used: Load
// fills defaults.
type Config struct {
	Env      string
	HTTPAddr string
	DataDir  string

	NATSURL string
	// EmbeddedNATSAddr is where `gnome serve` listens with its embedded NATS
	// server when NATSURL is empty.
	EmbeddedNATSAddr string
	// NATSReplicas is the replica count of every stream, bucket and object
	// store the services provision (1 on a single server, 3 on a cluster).
	NATSReplicas int
	// ProvisionTimeout bounds how long a service retries creating the
	// streams, buckets and object stores it needs while JetStream cannot
	// answer yet (PROVISION_TIMEOUT_SECONDS, 60 by default): services
	// started with, or before, their NATS cluster wait for it, reporting
	// not ready, and exit only past it.
	ProvisionTimeout time.Duration
	// NATSAuth is how this process authenticates to an external NATS
	// cluster (NATS_USER/NATS_PASSWORD, NATS_CREDS or NATS_NKEY_SEED). The
	// embedded server generates its own credentials under DATA_DIR.
	NATSAuth NATSAuth

	MongoURI          string
	MongoDB           string
	MongoMinPool      uint64
	MongoMaxPool      uint64
	EmbeddedStoreAddr string
	// EmbeddedEngine is the engine under the embedded store
	// (EMBEDDED_STORE): sqlite, postgres or auto, the default (PostgreSQL
	// where it can run and the directory holds no SQLite data, else SQLite;
	// docs/architecture.md, "The embedded store"). `gnome serve` replaces
	// auto by the engine it chose once the store runs.
	EmbeddedEngine string

	SecretKey string
	// SecretKeyPrevious is the SECRET_KEY before the last change
	// (SECRET_KEY_PREVIOUS): experiments' secrets sealed with it still open,
	// and are sealed again with SecretKey (docs/experiments.md, "Secrets").
	SecretKeyPrevious string

	EnableRegistration bool
	AdminEmail         string
	AdminPassword      string
	// DemoEmail and DemoPassword are ENABLE_DEMO=email:password, the
	// platform-wide demo account (role demo: it looks, it changes
	// nothing); both "" when not set.
	DemoEmail, DemoPassword string

	LogLevel  string
	LogFormat string

	MaxUploadSizeMB int64

	TrustedProxies []netip.Prefix
	// MetricsAllowed are the networks that may read /metrics; loopback always may.
	MetricsAllowed []netip.Prefix
	// MetricsAddr is where a service binary serves /metrics and /health
	// on a listener of its own (METRICS_ADDR, host:port; empty: none), and
	// what its probe subcommand asks.
	MetricsAddr string
	// MetricsToken, when set, lets a scraper read /metrics from anywhere
	// with `Authorization: Bearer <token>` (METRICS_TOKEN).
	MetricsToken string

	// PublicURL is the platform's own origin as browsers reach it
	// (PUBLIC_URL, for example https://gnome.example): HTTPS redirects and
	// the experiment hand-off are built from it, never from the Host
	// header. Empty in development means http://<HTTP_ADDR>.
	PublicURL string
	// ExperimentOrigin is the URL template, with {slug} in its host, of the
	// origin each experiment is served from (EXPERIMENT_ORIGIN). Empty in
	// development means http://{slug}.localhost:<port of HTTP_ADDR>.
	ExperimentOrigin string

	B2 B2Config
	// ExportRetention is how long a ready export stays downloadable before
	// the clean-up deletes its file (EXPORT_RETENTION_HOURS, 24 by default).
	ExportRetention time.Duration
	// ExportLinkTTL is how long a presigned download link works
	// (EXPORT_LINK_TTL_SECONDS, 900 by default).
	ExportLinkTTL time.Duration
	// ExportJobAckWait is how long an export job may go without a sign of
	// life from its worker before another worker takes it over
	// (EXPORT_JOB_ACK_WAIT_SECONDS, 30 by default); workers signal every
	// third of it.
	ExportJobAckWait time.Duration

	// ShutdownGrace bounds how long in-flight requests and jobs get on SIGTERM
	// before jobs are handed back to the queue.
	ShutdownGrace time.Duration

	// ActorIdleUnload is how long an actor may go without calls before its
	// worker unloads it, to start it again on the next call
	// (ACTOR_IDLE_UNLOAD_SECONDS, 600 by default; 0 keeps actors loaded).
	ActorIdleUnload time.Duration

	// Live is the bounds of live channels (docs/actors.md, section 8).
	Live LiveLimits
}

// LiveLimits bounds live channels: WebSockets and event streams.
type LiveLimits struct {
	// MaxMessage bounds one message either way, in bytes
	// (LIVE_MAX_MESSAGE_BYTES, 65536 by default).
	MaxMessage int
	// MaxConnections bounds one experiment's connections over every edge
	// (LIVE_MAX_CONNECTIONS, 10000 by default).
	MaxConnections int
	// MaxPerClient bounds one client's connections to one experiment
	// (LIVE_MAX_CONNECTIONS_PER_CLIENT, 16 by default).
	MaxPerClient int
	// MaxRooms bounds the rooms one connection is in
	// (LIVE_MAX_ROOMS_PER_CONNECTION, 32 by default).
	MaxRooms int
	// SendQueue bounds the messages waiting to be written to one
	// connection; a reader that lets it fill is closed
	// (LIVE_SEND_QUEUE, 256 by default).
	SendQueue int
}

// NATSAuth is one way to authenticate to NATS; at most one is set.
type NATSAuth struct {
	User, Password string
	// CredsFile is a JWT .creds file (NATS_CREDS).
	CredsFile string
	// NKeySeedFile is a file holding an nkey seed (NATS_NKEY_SEED).
	NKeySeedFile string
}

// Set reports whether any credential is configured.
func (a NATSAuth) Set() bool {
	return a.User != "" || a.Password != "" || a.CredsFile != "" || a.NKeySeedFile != ""
}

// B2Config is the optional S3-compatible export storage.
type B2Config struct {
	KeyID, Key, Bucket, Endpoint string
}

// Enabled reports whether S3-compatible storage is configured.
func (b B2Config) Enabled() bool { return b.KeyID != "" && b.Key != "" && b.Bucket != "" }

// IsProduction reports whether production rules apply.
func (c *Config) IsProduction() bool { return c.Env == Production }

// Embedded reports whether this process must start the embedded NATS server
// and store (true only when both URLs are empty).
func (c *Config) EmbeddedNATS() bool  { return c.NATSURL == "" }
func (c *Config) EmbeddedStore() bool { return c.MongoURI == "" }

// Error is a setting that failed validation; it names the variable.
type Error struct {
	Var string
	Msg string
}

func (e *Error) Error() string { return e.Var + ": " + e.Msg }

// Getenv is how Load reads the environment; tests pass a map's lookup.
type Getenv func(string) (string, bool)

// Load reads the settings from the process environment.
func Load() (*Config, error) { return LoadFrom(os.LookupEnv) }

// LoadFrom reads the settings through get and validates them. It does not
// touch the disk; see EnsureSecretKey for the development key.
func LoadFrom(get Getenv) (*Config, error) {
	var errs []error
	str := func(name, def string) string {
		if v, ok := get(name); ok && strings.TrimSpace(v) != "" {
			return strings.TrimSpace(v)
		}
		return def
	}
	integer := func(name string, def int64, min int64) int64 {
		v := str(name, "")
		if v == "" {
			return def
		}
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < min {
			errs = append(errs, &Error{name, fmt.Sprintf("must be a whole number of at least %d, got %q", min, v)})
			return def
		}
		return n
	}
	boolean := func(name string, def bool) bool {
		v := str(name, "")
		if v == "" {
			return def
		}
		b, err := strconv.ParseBool(strings.ToLower(v))
		if err != nil {
			errs = append(errs, &Error{name, fmt.Sprintf("must be true or false, got %q", v)})
			return def
		}
		return b
	}
	cidrs := func(name string) []netip.Prefix {
		var out []netip.Prefix
		for _, f := range strings.Split(str(name, ""), ",") {
			f = strings.TrimSpace(f)
			if f == "" {
				continue
			}
			p, err := parsePrefix(f)
			if err != nil {
				errs = append(errs, &Error{name, fmt.Sprintf("%q is not an IP address or CIDR", f)})
				continue
			}
			out = append(out, p)
		}
		return out
	}

	c := &Config{
		Env:              strings.ToLower(str("G_NOME_ENV", Development)),
		HTTPAddr:         str("HTTP_ADDR", "127.0.0.1:8080"),
		DataDir:          str("DATA_DIR", "./data"),
		NATSURL:          str("NATS_URL", ""),
		EmbeddedNATSAddr: str("EMBEDDED_NATS_ADDR", "127.0.0.1:4222"),
		NATSReplicas:     int(integer("NATS_REPLICAS", 1, 1)),
		ProvisionTimeout: time.Duration(integer("PROVISION_TIMEOUT_SECONDS", 60, 1)) * time.Second,
		NATSAuth: NATSAuth{
			User: str("NATS_USER", ""), Password: str("NATS_PASSWORD", ""),
			CredsFile: str("NATS_CREDS", ""), NKeySeedFile: str("NATS_NKEY_SEED", ""),
		},
		MongoURI:           str("MONGO_URI", ""),
		MongoDB:            str("MONGO_DB", "gnome"),
		MongoMinPool:       uint64(integer("MONGO_MAIN_MIN_POOL_SIZE", 10, 0)),
		MongoMaxPool:       uint64(integer("MONGO_MAIN_MAX_POOL_SIZE", 50, 1)),
		EmbeddedStoreAddr:  str("EMBEDDED_STORE_ADDR", "127.0.0.1:27017"),
		EmbeddedEngine:     strings.ToLower(str("EMBEDDED_STORE", "auto")),
		SecretKey:          str("SECRET_KEY", str("FLASK_SECRET_KEY", "")),
		SecretKeyPrevious:  str("SECRET_KEY_PREVIOUS", ""),
		EnableRegistration: boolean("ENABLE_REGISTRATION", false),
		AdminEmail:         strings.ToLower(str("ADMIN_EMAIL", "admin@example.com")),
		AdminPassword:      str("ADMIN_PASSWORD", ""),
		LogLevel:           strings.ToUpper(str("LOG_LEVEL", "INFO")),
		LogFormat:          strings.ToLower(str("LOG_FORMAT", "text")),
		MaxUploadSizeMB:    integer("MAX_UPLOAD_SIZE_MB", 100, 1),
		TrustedProxies:     cidrs("TRUSTED_PROXIES"),
		MetricsAllowed:     cidrs("METRICS_ALLOWED_CIDRS"),
		MetricsToken:       str("METRICS_TOKEN", ""),
		MetricsAddr:        str("METRICS_ADDR", ""),
		PublicURL:          strings.TrimRight(str("PUBLIC_URL", ""), "/"),
		ExperimentOrigin:   strings.TrimRight(str("EXPERIMENT_ORIGIN", ""), "/"),
		B2: B2Config{
			KeyID:    str("B2_APPLICATION_KEY_ID", str("B2_ACCESS_KEY_ID", "")),
			Key:      str("B2_APPLICATION_KEY", str("B2_SECRET_ACCESS_KEY", "")),
			Bucket:   str("B2_BUCKET_NAME", ""),
			Endpoint: str("B2_ENDPOINT_URL", ""),
		},
		ExportRetention:  time.Duration(integer("EXPORT_RETENTION_HOURS", 24, 1)) * time.Hour,
		ExportLinkTTL:    time.Duration(integer("EXPORT_LINK_TTL_SECONDS", 900, 60)) * time.Second,
		ExportJobAckWait: time.Duration(integer("EXPORT_JOB_ACK_WAIT_SECONDS", 30, 3)) * time.Second,
		ShutdownGrace:    time.Duration(integer("SHUTDOWN_GRACE_SECONDS", 20, 0)) * time.Second,
		ActorIdleUnload:  time.Duration(integer("ACTOR_IDLE_UNLOAD_SECONDS", 600, 0)) * time.Second,
		Live: LiveLimits{
			MaxMessage:     int(integer("LIVE_MAX_MESSAGE_BYTES", 64<<10, 128)),
			MaxConnections: int(integer("LIVE_MAX_CONNECTIONS", 10000, 1)),
			MaxPerClient:   int(integer("LIVE_MAX_CONNECTIONS_PER_CLIENT", 16, 1)),
			MaxRooms:       int(integer("LIVE_MAX_ROOMS_PER_CONNECTION", 32, 1)),
			SendQueue:      int(integer("LIVE_SEND_QUEUE", 256, 1)),
		},
	}

	if c.Env != Development && c.Env != Production {
		errs = append(errs, &Error{"G_NOME_ENV", fmt.Sprintf("must be %q or %q, got %q", Development, Production, c.Env)})
	}
	addrs := map[string]string{"HTTP_ADDR": c.HTTPAddr, "EMBEDDED_NATS_ADDR": c.EmbeddedNATSAddr, "EMBEDDED_STORE_ADDR": c.EmbeddedStoreAddr}
	if c.MetricsAddr != "" {
		addrs["METRICS_ADDR"] = c.MetricsAddr
	}
	for name, addr := range addrs {
		if _, port, err := net.SplitHostPort(addr); err != nil {
			errs = append(errs, &Error{name, fmt.Sprintf("must be host:port, got %q", addr)})
		} else if _, err := strconv.ParseUint(port, 10, 16); err != nil {
			errs = append(errs, &Error{name, fmt.Sprintf("port must be a number from 0 to 65535, got %q", port)})
		}
	}
	switch c.EmbeddedEngine {
	case "sqlite", "postgres", "auto":
	default:
		errs = append(errs, &Error{"EMBEDDED_STORE", fmt.Sprintf("must be sqlite, postgres or auto, got %q", c.EmbeddedEngine)})
	}
	if c.MongoMinPool > c.MongoMaxPool {
		errs = append(errs, &Error{"MONGO_MAIN_MIN_POOL_SIZE", fmt.Sprintf("%d is above MONGO_MAIN_MAX_POOL_SIZE %d", c.MongoMinPool, c.MongoMaxPool)})
	}
	switch c.LogLevel {
	case "DEBUG", "INFO", "WARNING", "WARN", "ERROR", "CRITICAL":
	default:
		errs = append(errs, &Error{"LOG_LEVEL", fmt.Sprintf("must be DEBUG, INFO, WARNING, ERROR or CRITICAL, got %q", c.LogLevel)})
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		errs = append(errs, &Error{"LOG_FORMAT", fmt.Sprintf("must be text or json, got %q", c.LogFormat)})
	}
	errs = append(errs, c.checkOrigins()...)
	errs = append(errs, c.checkNATSAuth()...)
	if c.MetricsToken != "" && len(c.MetricsToken) < 24 {
		errs = append(errs, &Error{"METRICS_TOKEN", "must be at least 24 characters"})
	}
	if !strings.Contains(c.AdminEmail, "@") {
		errs = append(errs, &Error{"ADMIN_EMAIL", fmt.Sprintf("%q is not an email address", c.AdminEmail)})
	}
	errs = append(errs, c.parseDemo(str("ENABLE_DEMO", ""))...)
	if c.IsProduction() {
		switch {
		case c.SecretKey == "":
			errs = append(errs, &Error{"SECRET_KEY", "is required in production"})
		case len(c.SecretKey) < MinSecretKeyLen:
			errs = append(errs, &Error{"SECRET_KEY", fmt.Sprintf("must be at least %d characters in production", MinSecretKeyLen)})
		case IsKnownDefault(c.SecretKey):
			errs = append(errs, &Error{"SECRET_KEY", "is a known default value"})
		}
	}
	// ADMIN_PASSWORD is required only where the first admin is created
	// (RequireFor); wherever it is given, it must not be weak.
	if c.AdminPassword != "" {
		if msg := WeakPassword(c.AdminPassword); msg != "" {
			errs = append(errs, &Error{"ADMIN_PASSWORD", msg})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return c, nil
}

// parseDemo reads ENABLE_DEMO=email:password (the original's form; the
// password is everything after the first colon). Production wants a
// password that is no default and not short, as ADMIN_PASSWORD: the demo
// account signs in on the public platform.
func (c *Config) parseDemo(v string) []error {
	if v == "" {
		return nil
	}
	email, password, ok := strings.Cut(v, ":")
	email = strings.ToLower(strings.TrimSpace(email))
	switch {
	case !ok:
		return []error{&Error{"ENABLE_DEMO", "must be email:password"}}
	case !strings.Contains(email, "@") || strings.ContainsAny(email, " \t<>\"") || len(email) > 254:
		return []error{&Error{"ENABLE_DEMO", fmt.Sprintf("%q is not an email address (want email:password)", email)}}
	case password == "":
		return []error{&Error{"ENABLE_DEMO", "has no password after the colon (want email:password)"}}
	case email == c.AdminEmail:
		return []error{&Error{"ENABLE_DEMO", "names ADMIN_EMAIL: the demo account must be another"}}
	}
	if c.IsProduction() {
		if msg := WeakPassword(password); msg != "" {
			return []error{&Error{"ENABLE_DEMO", "the password " + msg + " (required in production)"}}
		}
	}
	c.DemoEmail, c.DemoPassword = email, password
	return nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

// knownDefaults are values shipped as defaults by the original platform or
// common templates; none may guard a production deployment.
var knownDefaults = []string{
	"password123", "password", "admin", "admin123", "changeme", "change-me", "secret",
	"your-secret-key", "your-secret-key-here", "change-this-secret-key", "dev-secret-key",
	"flask-secret-key", "supersecret", "123456", "12345678", "letmein", "qwerty",
}

// IsKnownDefault reports whether v is a known default credential.
func IsKnownDefault(v string) bool {
	l := strings.ToLower(strings.TrimSpace(v))
	for _, d := range knownDefaults {
		if l == d {
			return true
		}
	}
	return false
}

// WeakPassword returns why an admin password is unacceptable, or "".
func WeakPassword(p string) string {
	switch {
	case p == "":
		return "is missing"
	case IsKnownDefault(p):
		return "is a known default password"
	case len(p) < 12:
		return "must be at least 12 characters"
	}
	return ""
}

// EnsureSecretKey fills SecretKey in development from DATA_DIR/secret_key,
// generating it once. In production the key must come from the environment.
func (c *Config) EnsureSecretKey() error {
	if c.SecretKey != "" {
		return nil
	}
	if c.IsProduction() {
		return &Error{"SECRET_KEY", "is required in production"}
	}
	path := filepath.Join(c.DataDir, "secret_key")
	if b, err := os.ReadFile(path); err == nil && len(strings.TrimSpace(string(b))) >= MinSecretKeyLen {
		c.SecretKey = strings.TrimSpace(string(b))
		return nil
	}
	if err := os.MkdirAll(c.DataDir, 0o700); err != nil {
		return fmt.Errorf("create data dir: %w", err)
	}
	buf := make([]byte, 32)
	if _, err := rand.Read(buf); err != nil {
		return fmt.Errorf("generate secret key: %w", err)
	}
	key := hex.EncodeToString(buf)
	if err := os.WriteFile(path, []byte(key+"\n"), 0o600); err != nil {
		return fmt.Errorf("write secret key: %w", err)
	}
	c.SecretKey = key
	return nil
}

// RequireExternal is the check a separately deployed service binary makes: it
// embeds nothing, so both URLs must be given, and in production whatever
// else it requires (RequireFor).
func (c *Config) RequireExternal(binary string) error {
	var errs []error
	if c.NATSURL == "" {
		errs = append(errs, &Error{"NATS_URL", binary + " embeds no NATS server; set NATS_URL (or run `gnome serve`)"})
	}
	if c.MongoURI == "" {
		errs = append(errs, &Error{"MONGO_URI", binary + " embeds no store; set MONGO_URI (or run `gnome serve`)"})
	}
	// What this binary requires in production (RequireFor), each
	// variable named once.
	for _, err := range c.missingFor(binary) {
		if e := err.(*Error); e.Var != "NATS_URL" && e.Var != "MONGO_URI" {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// checkOrigins validates PUBLIC_URL and EXPERIMENT_ORIGIN: absolute origins
// (scheme and host, no path, query or credentials), HTTPS in production, and
// the experiment template with exactly one {slug}, in its host.
func (c *Config) checkOrigins() []error {
	var errs []error
	origin := func(name, v string) *url.URL {
		u, err := url.Parse(strings.ReplaceAll(v, "{slug}", "slug"))
		switch {
		case err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https"):
			errs = append(errs, &Error{name, fmt.Sprintf("must be an http:// or https:// origin, got %q", v)})
		case u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
			errs = append(errs, &Error{name, fmt.Sprintf("must be only a scheme and host (no user, path or query), got %q", v)})
		case c.IsProduction() && u.Scheme != "https":
			errs = append(errs, &Error{name, fmt.Sprintf("must be https:// in production, got %q", v)})
		default:
			return u
		}
		return nil
	}
	if c.PublicURL != "" {
		origin("PUBLIC_URL", c.PublicURL)
	}
	if c.ExperimentOrigin != "" {
		if u := origin("EXPERIMENT_ORIGIN", c.ExperimentOrigin); u != nil {
			host, _, _ := strings.Cut(strings.TrimPrefix(strings.TrimPrefix(c.ExperimentOrigin, "https://"), "http://"), "/")
			if strings.Count(c.ExperimentOrigin, "{slug}") != 1 || !strings.Contains(host, "{slug}") {
				errs = append(errs, &Error{"EXPERIMENT_ORIGIN", fmt.Sprintf("must hold {slug} once, in its host (for example https://{slug}.labs-usercontent.example), got %q", c.ExperimentOrigin)})
			}
		}
	}
	return errs
}

// checkNATSAuth allows one way of authenticating to NATS at a time, and
// only towards an external cluster.
func (c *Config) checkNATSAuth() []error {
	a := c.NATSAuth
	ways := 0
	for _, set := range []bool{a.User != "" || a.Password != "", a.CredsFile != "", a.NKeySeedFile != ""} {
		if set {
			ways++
		}
	}
	var errs []error
	if ways > 1 {
		errs = append(errs, &Error{"NATS_USER", "set one of NATS_USER/NATS_PASSWORD, NATS_CREDS or NATS_NKEY_SEED, not several"})
	}
	if (a.User == "") != (a.Password == "") {
		errs = append(errs, &Error{"NATS_PASSWORD", "NATS_USER and NATS_PASSWORD go together"})
	}
	return errs
}
