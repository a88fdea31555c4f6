package config_test

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/config"
)

// env is a fake environment for LoadFrom.
type env map[string]string

func (e env) get(k string) (string, bool) { v, ok := e[k]; return v, ok }

func load(t *testing.T, e env) (*config.Config, error) {
	t.Helper()
	return config.LoadFrom(e.get)
}

func mustLoad(t *testing.T, e env) *config.Config {
	t.Helper()
	c, err := load(t, e)
	if err != nil {
		t.Fatalf("LoadFrom(%v): %v", e, err)
	}
	return c
}

// failedVars lists the variables named by the *config.Error values in err.
func failedVars(err error) []string {
	var out []string
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if ce, ok := err.(*config.Error); ok {
			out = append(out, ce.Var)
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		walk(errors.Unwrap(err))
	}
	walk(err)
	return out
}

// A production environment that passes every check; tests change one thing.
func prodEnv() env {
	return env{
		"G_NOME_ENV":     "production",
		"SECRET_KEY":     strings.Repeat("k", config.MinSecretKeyLen),
		"ADMIN_PASSWORD": "a-long-and-unguessable-passphrase",
	}
}

func TestDefaults(t *testing.T) {
	c := mustLoad(t, env{})
	want := &config.Config{
		Env:                config.Development,
		HTTPAddr:           "127.0.0.1:8080",
		DataDir:            "./data",
		EmbeddedNATSAddr:   "127.0.0.1:4222",
		NATSReplicas:       1,
		ProvisionTimeout:   time.Minute,
		MongoDB:            "gnome",
		MongoMinPool:       10,
		MongoMaxPool:       50,
		EmbeddedStoreAddr:  "127.0.0.1:27017",
		EmbeddedEngine:     "auto",
		AdminEmail:         "admin@example.com",
		LogLevel:           "INFO",
		LogFormat:          "text",
		MaxUploadSizeMB:    100,
		ExportRetention:    24 * time.Hour,
		ExportLinkTTL:      15 * time.Minute,
		ExportJobAckWait:   30 * time.Second,
		ShutdownGrace:      20 * time.Second,
		ActorIdleUnload:    10 * time.Minute,
		EnableRegistration: false,
		Live:               config.LiveLimits{MaxMessage: 65536, MaxConnections: 10000, MaxPerClient: 16, MaxRooms: 32, SendQueue: 256},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", c, want)
	}
	if c.IsProduction() {
		t.Error("the default environment is production")
	}
	if !c.EmbeddedNATS() || !c.EmbeddedStore() {
		t.Error("with no URLs the embedded NATS and store must be used")
	}
	if c.B2.Enabled() {
		t.Error("B2 is enabled by default")
	}
}

func TestBlankValuesMeanDefault(t *testing.T) {
	c := mustLoad(t, env{"MONGO_DB": "   ", "HTTP_ADDR": "", "LOG_LEVEL": "\t"})
	if c.MongoDB != "gnome" || c.HTTPAddr != "127.0.0.1:8080" || c.LogLevel != "INFO" {
		t.Errorf("blank values did not fall back to defaults: %+v", c)
	}
}

func TestEveryVariableIsRead(t *testing.T) {
	c := mustLoad(t, env{
		"G_NOME_ENV":                      "Production",
		"HTTP_ADDR":                       "127.0.0.1:9090",
		"DATA_DIR":                        "/var/lib/gnome",
		"NATS_URL":                        "nats://10.0.0.1:4222,nats://10.0.0.2:4222",
		"EMBEDDED_NATS_ADDR":              "127.0.0.1:14222",
		"NATS_REPLICAS":                   "3",
		"PROVISION_TIMEOUT_SECONDS":       "90",
		"METRICS_ADDR":                    "0.0.0.0:9464",
		"MONGO_URI":                       "mongodb://db:27017/?replicaSet=rs0",
		"MONGO_DB":                        "gnome_prod",
		"MONGO_MAIN_MIN_POOL_SIZE":        "5",
		"MONGO_MAIN_MAX_POOL_SIZE":        "20",
		"EMBEDDED_STORE_ADDR":             "[::1]:27018",
		"EMBEDDED_STORE":                  "Postgres",
		"SECRET_KEY":                      "  " + strings.Repeat("s", 40) + "  ",
		"ENABLE_REGISTRATION":             "TRUE",
		"ADMIN_EMAIL":                     "Root@Example.ORG",
		"ADMIN_PASSWORD":                  "correct horse battery staple",
		"LOG_LEVEL":                       "warning",
		"LOG_FORMAT":                      "JSON",
		"MAX_UPLOAD_SIZE_MB":              "250",
		"TRUSTED_PROXIES":                 "10.1.2.3/8, 192.168.1.1 ,2001:db8::/32",
		"METRICS_ALLOWED_CIDRS":           "172.16.0.0/12",
		"B2_APPLICATION_KEY_ID":           "kid",
		"B2_APPLICATION_KEY":              "key",
		"B2_BUCKET_NAME":                  "exports",
		"B2_ENDPOINT_URL":                 "https://s3.example.com",
		"SHUTDOWN_GRACE_SECONDS":          "7",
		"EXPORT_RETENTION_HOURS":          "48",
		"EXPORT_LINK_TTL_SECONDS":         "300",
		"EXPORT_JOB_ACK_WAIT_SECONDS":     "10",
		"ACTOR_IDLE_UNLOAD_SECONDS":       "0",
		"LIVE_MAX_MESSAGE_BYTES":          "4096",
		"LIVE_MAX_CONNECTIONS":            "500",
		"LIVE_MAX_CONNECTIONS_PER_CLIENT": "4",
		"LIVE_MAX_ROOMS_PER_CONNECTION":   "2",
		"LIVE_SEND_QUEUE":                 "8",
		"NATS_CREDS":                      "/run/secrets/edge.creds",
		"METRICS_TOKEN":                   strings.Repeat("m", 30),
		"PUBLIC_URL":                      "https://gnome.example/",
		"EXPERIMENT_ORIGIN":               "https://{slug}.labs-usercontent.example",
	})
	want := &config.Config{
		Env:                config.Production,
		HTTPAddr:           "127.0.0.1:9090",
		DataDir:            "/var/lib/gnome",
		NATSURL:            "nats://10.0.0.1:4222,nats://10.0.0.2:4222",
		EmbeddedNATSAddr:   "127.0.0.1:14222",
		NATSReplicas:       3,
		ProvisionTimeout:   90 * time.Second,
		MongoURI:           "mongodb://db:27017/?replicaSet=rs0",
		MongoDB:            "gnome_prod",
		MongoMinPool:       5,
		MongoMaxPool:       20,
		EmbeddedStoreAddr:  "[::1]:27018",
		EmbeddedEngine:     "postgres",
		SecretKey:          strings.Repeat("s", 40),
		EnableRegistration: true,
		AdminEmail:         "root@example.org",
		AdminPassword:      "correct horse battery staple",
		LogLevel:           "WARNING",
		LogFormat:          "json",
		MaxUploadSizeMB:    250,
		TrustedProxies: []netip.Prefix{
			netip.MustParsePrefix("10.0.0.0/8"),
			netip.MustParsePrefix("192.168.1.1/32"),
			netip.MustParsePrefix("2001:db8::/32"),
		},
		MetricsAllowed:   []netip.Prefix{netip.MustParsePrefix("172.16.0.0/12")},
		NATSAuth:         config.NATSAuth{CredsFile: "/run/secrets/edge.creds"},
		MetricsToken:     strings.Repeat("m", 30),
		MetricsAddr:      "0.0.0.0:9464",
		PublicURL:        "https://gnome.example",
		ExperimentOrigin: "https://{slug}.labs-usercontent.example",
		B2:               config.B2Config{KeyID: "kid", Key: "key", Bucket: "exports", Endpoint: "https://s3.example.com"},
		ExportRetention:  48 * time.Hour,
		ExportLinkTTL:    5 * time.Minute,
		ExportJobAckWait: 10 * time.Second,
		ShutdownGrace:    7 * time.Second,
		Live:             config.LiveLimits{MaxMessage: 4096, MaxConnections: 500, MaxPerClient: 4, MaxRooms: 2, SendQueue: 8},
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("parsed:\n got %+v\nwant %+v", c, want)
	}
	if !c.IsProduction() || c.EmbeddedNATS() || c.EmbeddedStore() || !c.B2.Enabled() {
		t.Errorf("derived facts wrong: production=%v embeddedNATS=%v embeddedStore=%v b2=%v",
			c.IsProduction(), c.EmbeddedNATS(), c.EmbeddedStore(), c.B2.Enabled())
	}
}

func TestBadValuesNameTheVariable(t *testing.T) {
	for _, tc := range []struct {
		name, variable, value string
	}{
		{"unknown environment", "G_NOME_ENV", "staging"},
		{"unknown log level", "LOG_LEVEL", "LOUD"},
		{"unknown log format", "LOG_FORMAT", "xml"},
		{"address without port", "HTTP_ADDR", "127.0.0.1"},
		{"port not a number", "HTTP_ADDR", "127.0.0.1:http-alt"},
		{"port too large", "HTTP_ADDR", "127.0.0.1:65536"},
		{"negative port", "HTTP_ADDR", "127.0.0.1:-1"},
		{"embedded nats port", "EMBEDDED_NATS_ADDR", "127.0.0.1:99999"},
		{"embedded store address", "EMBEDDED_STORE_ADDR", "localhost"},
		{"embedded store engine", "EMBEDDED_STORE", "mysql"},
		{"pool size not a number", "MONGO_MAIN_MAX_POOL_SIZE", "lots"},
		{"pool max zero", "MONGO_MAIN_MAX_POOL_SIZE", "0"},
		{"pool min negative", "MONGO_MAIN_MIN_POOL_SIZE", "-1"},
		{"pool min above default max", "MONGO_MAIN_MIN_POOL_SIZE", "51"},
		{"replicas zero", "NATS_REPLICAS", "0"},
		{"provisioning bound zero", "PROVISION_TIMEOUT_SECONDS", "0"},
		{"metrics address without port", "METRICS_ADDR", "localhost"},
		{"upload size zero", "MAX_UPLOAD_SIZE_MB", "0"},
		{"upload size fraction", "MAX_UPLOAD_SIZE_MB", "1.5"},
		{"grace negative", "SHUTDOWN_GRACE_SECONDS", "-3"},
		{"idle unload negative", "ACTOR_IDLE_UNLOAD_SECONDS", "-1"},
		{"idle unload as a duration", "ACTOR_IDLE_UNLOAD_SECONDS", "10m"},
		{"live message too small", "LIVE_MAX_MESSAGE_BYTES", "100"},
		{"live connections zero", "LIVE_MAX_CONNECTIONS", "0"},
		{"live per client not a number", "LIVE_MAX_CONNECTIONS_PER_CLIENT", "many"},
		{"live rooms negative", "LIVE_MAX_ROOMS_PER_CONNECTION", "-1"},
		{"live send queue zero", "LIVE_SEND_QUEUE", "0"},
		{"registration not a bool", "ENABLE_REGISTRATION", "maybe"},
		{"admin email", "ADMIN_EMAIL", "admin"},
		{"trusted proxy garbage", "TRUSTED_PROXIES", "10.0.0.0/8,not-an-ip"},
		{"trusted proxy bad mask", "TRUSTED_PROXIES", "10.0.0.0/33"},
		{"metrics cidr garbage", "METRICS_ALLOWED_CIDRS", "localhost"},
		{"weak admin password in development", "ADMIN_PASSWORD", "short"},
		{"default admin password in development", "ADMIN_PASSWORD", "password123"},
		{"public url not a url", "PUBLIC_URL", "gnome.example"},
		{"public url with a path", "PUBLIC_URL", "https://gnome.example/app"},
		{"public url with a query", "PUBLIC_URL", "https://gnome.example/?a=b"},
		{"public url with credentials", "PUBLIC_URL", "https://u:p@gnome.example"},
		{"public url other scheme", "PUBLIC_URL", "ftp://gnome.example"},
		{"experiment origin without slug", "EXPERIMENT_ORIGIN", "https://labs.example"},
		{"experiment origin slug twice", "EXPERIMENT_ORIGIN", "https://{slug}.{slug}.example"},
		{"experiment origin slug in path", "EXPERIMENT_ORIGIN", "https://labs.example/{slug}"},
		{"experiment origin not a url", "EXPERIMENT_ORIGIN", "{slug}.labs.example"},
		{"short metrics token", "METRICS_TOKEN", "short"},
		{"nats user without password", "NATS_PASSWORD", "only-a-password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := load(t, env{tc.variable: tc.value})
			if err == nil {
				t.Fatalf("%s=%q was accepted", tc.variable, tc.value)
			}
			if vars := failedVars(err); !slices.Contains(vars, tc.variable) {
				t.Errorf("error %q names %v, not %s", err, vars, tc.variable)
			}
			if !strings.Contains(err.Error(), tc.variable) {
				t.Errorf("message %q does not name %s", err, tc.variable)
			}
		})
	}
}

func TestOneWayToAuthenticateToNATS(t *testing.T) {
	_, err := load(t, env{"NATS_USER": "edge", "NATS_PASSWORD": "pw", "NATS_CREDS": "/edge.creds"})
	if err == nil || !slices.Contains(failedVars(err), "NATS_USER") {
		t.Fatalf("user and creds file together: err = %v", err)
	}
	c := mustLoad(t, env{"NATS_USER": "edge", "NATS_PASSWORD": "pw"})
	if !c.NATSAuth.Set() || c.NATSAuth.User != "edge" || c.NATSAuth.Password != "pw" {
		t.Errorf("user and password: %+v", c.NATSAuth)
	}
	if mustLoad(t, env{}).NATSAuth.Set() {
		t.Error("no NATS credentials are set by default")
	}
}

func TestProductionOriginsAreHTTPS(t *testing.T) {
	for _, v := range []string{"PUBLIC_URL", "EXPERIMENT_ORIGIN"} {
		e := prodEnv()
		e[v] = "http://{slug}.gnome.example"
		if v == "PUBLIC_URL" {
			e[v] = "http://gnome.example"
		}
		if _, err := load(t, e); err == nil || !slices.Contains(failedVars(err), v) {
			t.Errorf("plain-HTTP %s accepted in production: %v", v, err)
		}
	}
	c := mustLoad(t, env{"PUBLIC_URL": "http://127.0.0.1:8080", "EXPERIMENT_ORIGIN": "http://{slug}.localhost:8080"})
	if c.PublicURL != "http://127.0.0.1:8080" || c.ExperimentOrigin != "http://{slug}.localhost:8080" {
		t.Errorf("development origins: %q %q", c.PublicURL, c.ExperimentOrigin)
	}
}

func TestPoolMinAboveMax(t *testing.T) {
	_, err := load(t, env{"MONGO_MAIN_MIN_POOL_SIZE": "30", "MONGO_MAIN_MAX_POOL_SIZE": "20"})
	if err == nil || !slices.Contains(failedVars(err), "MONGO_MAIN_MIN_POOL_SIZE") {
		t.Fatalf("min 30 > max 20: err = %v", err)
	}
	c := mustLoad(t, env{"MONGO_MAIN_MIN_POOL_SIZE": "20", "MONGO_MAIN_MAX_POOL_SIZE": "20"})
	if c.MongoMinPool != 20 || c.MongoMaxPool != 20 {
		t.Errorf("equal bounds: %d..%d", c.MongoMinPool, c.MongoMaxPool)
	}
}

func TestEveryBadVariableIsReported(t *testing.T) {
	_, err := load(t, env{"G_NOME_ENV": "prod", "LOG_LEVEL": "LOUD", "HTTP_ADDR": "nowhere"})
	got := failedVars(err)
	for _, v := range []string{"G_NOME_ENV", "LOG_LEVEL", "HTTP_ADDR"} {
		if !slices.Contains(got, v) {
			t.Errorf("error %q does not report %s", err, v)
		}
	}
}

func TestAcceptedSpellings(t *testing.T) {
	for _, tc := range []struct {
		name string
		e    env
		ok   func(*config.Config) bool
	}{
		{"log level WARN", env{"LOG_LEVEL": "warn"}, func(c *config.Config) bool { return c.LogLevel == "WARN" }},
		{"log level CRITICAL", env{"LOG_LEVEL": "critical"}, func(c *config.Config) bool { return c.LogLevel == "CRITICAL" }},
		{"log level DEBUG", env{"LOG_LEVEL": "Debug"}, func(c *config.Config) bool { return c.LogLevel == "DEBUG" }},
		{"env in capitals", env{"G_NOME_ENV": "DEVELOPMENT"}, func(c *config.Config) bool { return c.Env == config.Development }},
		{"registration 1", env{"ENABLE_REGISTRATION": "1"}, func(c *config.Config) bool { return c.EnableRegistration }},
		{"registration False", env{"ENABLE_REGISTRATION": "False"}, func(c *config.Config) bool { return !c.EnableRegistration }},
		{"port zero", env{"HTTP_ADDR": "127.0.0.1:0"}, func(c *config.Config) bool { return c.HTTPAddr == "127.0.0.1:0" }},
		{"any host", env{"HTTP_ADDR": ":8080"}, func(c *config.Config) bool { return c.HTTPAddr == ":8080" }},
		{"IPv6 proxy address", env{"TRUSTED_PROXIES": "::1"}, func(c *config.Config) bool {
			return len(c.TrustedProxies) == 1 && c.TrustedProxies[0] == netip.MustParsePrefix("::1/128")
		}},
		{"empty items in a CIDR list", env{"TRUSTED_PROXIES": ",10.0.0.0/8,,"}, func(c *config.Config) bool {
			return len(c.TrustedProxies) == 1
		}},
		{"pool min zero", env{"MONGO_MAIN_MIN_POOL_SIZE": "0"}, func(c *config.Config) bool { return c.MongoMinPool == 0 }},
		{"grace zero", env{"SHUTDOWN_GRACE_SECONDS": "0"}, func(c *config.Config) bool { return c.ShutdownGrace == 0 }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if c := mustLoad(t, tc.e); !tc.ok(c) {
				t.Errorf("unexpected result %+v", c)
			}
		})
	}
}

func TestProductionRefusesInsecureSettings(t *testing.T) {
	if _, err := load(t, prodEnv()); err != nil {
		t.Fatalf("the secure production baseline is refused: %v", err)
	}
	for _, tc := range []struct {
		name, variable string
		change         env
		remove         string
	}{
		{"secret key missing", "SECRET_KEY", nil, "SECRET_KEY"},
		{"secret key blank", "SECRET_KEY", env{"SECRET_KEY": "   "}, ""},
		{"secret key short", "SECRET_KEY", env{"SECRET_KEY": strings.Repeat("k", config.MinSecretKeyLen-1)}, ""},
		{"secret key a known default", "SECRET_KEY", env{"SECRET_KEY": "your-secret-key-here"}, ""},
		{"old secret key name short", "SECRET_KEY", env{"FLASK_SECRET_KEY": "dev-secret-key"}, "SECRET_KEY"},
		{"admin password the old default", "ADMIN_PASSWORD", env{"ADMIN_PASSWORD": "password123"}, ""},
		{"admin password a default in capitals", "ADMIN_PASSWORD", env{"ADMIN_PASSWORD": "ChangeMe"}, ""},
		{"admin password weak", "ADMIN_PASSWORD", env{"ADMIN_PASSWORD": "Tr0ub4dor&3"}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := prodEnv()
			delete(e, tc.remove)
			for k, v := range tc.change {
				e[k] = v
			}
			_, err := load(t, e)
			if err == nil {
				t.Fatal("production accepted it")
			}
			if vars := failedVars(err); !slices.Contains(vars, tc.variable) {
				t.Errorf("error %q names %v, not %s", err, vars, tc.variable)
			}
			if !strings.Contains(err.Error(), tc.variable) {
				t.Errorf("message %q does not name %s", err, tc.variable)
			}
		})
	}
}

func TestDevelopmentNeedsNoSecrets(t *testing.T) {
	c := mustLoad(t, env{"G_NOME_ENV": "development"})
	if c.SecretKey != "" || c.AdminPassword != "" {
		t.Errorf("development invented secrets: %+v", c)
	}
}

func TestFlaskSecretKeyIsTheOldName(t *testing.T) {
	old := strings.Repeat("f", 40)
	c := mustLoad(t, env{"FLASK_SECRET_KEY": old})
	if c.SecretKey != old {
		t.Errorf("FLASK_SECRET_KEY not used: %q", c.SecretKey)
	}
	e := prodEnv()
	delete(e, "SECRET_KEY")
	e["FLASK_SECRET_KEY"] = old
	if c := mustLoad(t, e); c.SecretKey != old {
		t.Errorf("production with FLASK_SECRET_KEY: key %q", c.SecretKey)
	}
	nw := strings.Repeat("n", 40)
	if c := mustLoad(t, env{"FLASK_SECRET_KEY": old, "SECRET_KEY": nw}); c.SecretKey != nw {
		t.Errorf("SECRET_KEY must win over FLASK_SECRET_KEY, got %q", c.SecretKey)
	}
}

func TestB2Aliases(t *testing.T) {
	for _, tc := range []struct {
		name    string
		e       env
		want    config.B2Config
		enabled bool
	}{
		{"new names", env{"B2_APPLICATION_KEY_ID": "id", "B2_APPLICATION_KEY": "k", "B2_BUCKET_NAME": "b"},
			config.B2Config{KeyID: "id", Key: "k", Bucket: "b"}, true},
		{"S3 names", env{"B2_ACCESS_KEY_ID": "id2", "B2_SECRET_ACCESS_KEY": "k2", "B2_BUCKET_NAME": "b"},
			config.B2Config{KeyID: "id2", Key: "k2", Bucket: "b"}, true},
		{"B2 names win", env{"B2_APPLICATION_KEY_ID": "id", "B2_ACCESS_KEY_ID": "id2", "B2_APPLICATION_KEY": "k", "B2_SECRET_ACCESS_KEY": "k2", "B2_BUCKET_NAME": "b"},
			config.B2Config{KeyID: "id", Key: "k", Bucket: "b"}, true},
		{"no bucket", env{"B2_APPLICATION_KEY_ID": "id", "B2_APPLICATION_KEY": "k"},
			config.B2Config{KeyID: "id", Key: "k"}, false},
		{"no key", env{"B2_ACCESS_KEY_ID": "id", "B2_BUCKET_NAME": "b", "B2_ENDPOINT_URL": "http://127.0.0.1:9000"},
			config.B2Config{KeyID: "id", Bucket: "b", Endpoint: "http://127.0.0.1:9000"}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := mustLoad(t, tc.e)
			if c.B2 != tc.want || c.B2.Enabled() != tc.enabled {
				t.Errorf("B2 = %+v enabled=%v, want %+v enabled=%v", c.B2, c.B2.Enabled(), tc.want, tc.enabled)
			}
		})
	}
}

func TestWeakPasswordAndKnownDefaults(t *testing.T) {
	for _, tc := range []struct {
		password string
		weak     bool
	}{
		{"", true},
		{"password123", true},
		{"  PASSWORD123 ", true},
		{"admin", true},
		{"eleven-char", true},
		{"twelve-chars", false},
		{"correct horse battery staple", false},
	} {
		if got := config.WeakPassword(tc.password) != ""; got != tc.weak {
			t.Errorf("WeakPassword(%q) weak=%v, want %v", tc.password, got, tc.weak)
		}
	}
	if !config.IsKnownDefault("Change-Me") || config.IsKnownDefault("a unique value") {
		t.Error("IsKnownDefault misjudges")
	}
}

var hexKey = regexp.MustCompile(`^[0-9a-f]{64}$`)

func TestEnsureSecretKeyGeneratesOnceAndReuses(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	c := mustLoad(t, env{"DATA_DIR": dir})
	if err := c.EnsureSecretKey(); err != nil {
		t.Fatalf("EnsureSecretKey: %v", err)
	}
	if !hexKey.MatchString(c.SecretKey) {
		t.Fatalf("generated key %q is not 32 random bytes in hex", c.SecretKey)
	}
	path := filepath.Join(dir, "secret_key")
	st, err := os.Stat(path)
	if err != nil {
		t.Fatalf("key file: %v", err)
	}
	if perm := st.Mode().Perm(); perm != 0o600 {
		t.Errorf("key file mode %o, want 600", perm)
	}
	raw, _ := os.ReadFile(path)
	if strings.TrimSpace(string(raw)) != c.SecretKey {
		t.Errorf("file holds %q, config has %q", raw, c.SecretKey)
	}

	// A second start reads the same key and leaves the file alone.
	c2 := mustLoad(t, env{"DATA_DIR": dir})
	if err := c2.EnsureSecretKey(); err != nil {
		t.Fatalf("second EnsureSecretKey: %v", err)
	}
	if c2.SecretKey != c.SecretKey {
		t.Errorf("second start got a different key")
	}
	if raw2, _ := os.ReadFile(path); string(raw2) != string(raw) {
		t.Error("the key file was rewritten")
	}

	// A different data dir gets a different key.
	c3 := mustLoad(t, env{"DATA_DIR": t.TempDir()})
	if err := c3.EnsureSecretKey(); err != nil {
		t.Fatal(err)
	}
	if c3.SecretKey == c.SecretKey {
		t.Error("two data dirs share a generated key")
	}
}

func TestEnsureSecretKeyReplacesAShortFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "secret_key"), []byte("short\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := mustLoad(t, env{"DATA_DIR": dir})
	if err := c.EnsureSecretKey(); err != nil {
		t.Fatal(err)
	}
	if !hexKey.MatchString(c.SecretKey) {
		t.Errorf("a short stored key was used: %q", c.SecretKey)
	}
}

func TestEnsureSecretKeyKeepsAGivenKey(t *testing.T) {
	dir := t.TempDir()
	key := strings.Repeat("g", 40)
	c := mustLoad(t, env{"DATA_DIR": dir, "SECRET_KEY": key})
	if err := c.EnsureSecretKey(); err != nil {
		t.Fatal(err)
	}
	if c.SecretKey != key {
		t.Errorf("key replaced by %q", c.SecretKey)
	}
	if _, err := os.Stat(filepath.Join(dir, "secret_key")); !os.IsNotExist(err) {
		t.Errorf("a key file was written although SECRET_KEY is set (stat err %v)", err)
	}
}

func TestEnsureSecretKeyNeverGeneratesInProduction(t *testing.T) {
	dir := t.TempDir()
	c := &config.Config{Env: config.Production, DataDir: dir}
	err := c.EnsureSecretKey()
	var ce *config.Error
	if !errors.As(err, &ce) || ce.Var != "SECRET_KEY" {
		t.Fatalf("err = %v, want a SECRET_KEY error", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "secret_key")); !os.IsNotExist(err) {
		t.Error("production wrote a key file")
	}
}

func TestRequireExternal(t *testing.T) {
	err := mustLoad(t, env{}).RequireExternal("export")
	got := failedVars(err)
	if !slices.Contains(got, "NATS_URL") || !slices.Contains(got, "MONGO_URI") {
		t.Errorf("err %v names %v, want NATS_URL and MONGO_URI", err, got)
	}
	if !strings.Contains(err.Error(), "export") {
		t.Errorf("err %q does not name the binary", err)
	}
	err = mustLoad(t, env{"NATS_URL": "nats://10.0.0.1:4222"}).RequireExternal("auth")
	if got := failedVars(err); !slices.Equal(got, []string{"MONGO_URI"}) {
		t.Errorf("only MONGO_URI missing: err names %v", got)
	}
	if err := mustLoad(t, env{"NATS_URL": "nats://10.0.0.1:4222", "MONGO_URI": "mongodb://db"}).RequireExternal("auth"); err != nil {
		t.Errorf("both given: %v", err)
	}
}

func TestErrorMessage(t *testing.T) {
	e := &config.Error{Var: "LOG_LEVEL", Msg: "is odd"}
	if e.Error() != "LOG_LEVEL: is odd" {
		t.Errorf("Error() = %q", e.Error())
	}
}

// ENABLE_DEMO=email:password is the platform-wide demo account; a
// malformed value, or a weak password in production, stops the start and
// names the variable.
func TestEnableDemo(t *testing.T) {
	c := mustLoad(t, env{"ENABLE_DEMO": " Demo@Example.com:demo:with:colons"})
	if c.DemoEmail != "demo@example.com" || c.DemoPassword != "demo:with:colons" {
		t.Errorf("ENABLE_DEMO read as %q %q", c.DemoEmail, c.DemoPassword)
	}
	if c := mustLoad(t, env{}); c.DemoEmail != "" || c.DemoPassword != "" {
		t.Errorf("no ENABLE_DEMO gave %q %q", c.DemoEmail, c.DemoPassword)
	}
	p := prodEnv()
	p["ENABLE_DEMO"] = "demo@example.com:a long and unguessable demo passphrase"
	if c, err := load(t, p); err != nil || c.DemoEmail != "demo@example.com" {
		t.Errorf("a strong demo password in production: %v", err)
	}
	for name, e := range map[string]env{
		"no colon":                      {"ENABLE_DEMO": "demo@example.com"},
		"no password":                   {"ENABLE_DEMO": "demo@example.com:"},
		"no email":                      {"ENABLE_DEMO": ":password"},
		"not an email":                  {"ENABLE_DEMO": "demo:password"},
		"markup in the email":           {"ENABLE_DEMO": "<a>@example.com:password"},
		"the admin's email":             {"ENABLE_DEMO": "admin@example.com:password", "ADMIN_EMAIL": "admin@example.com"},
		"a weak password in production": nil,
		"a default in production":       nil,
	} {
		t.Run(name, func(t *testing.T) {
			switch name {
			case "a weak password in production":
				e = prodEnv()
				e["ENABLE_DEMO"] = "demo@example.com:demo123"
			case "a default in production":
				e = prodEnv()
				e["ENABLE_DEMO"] = "demo@example.com:password123"
			}
			_, err := load(t, e)
			if err == nil {
				t.Fatalf("ENABLE_DEMO %q was accepted", e["ENABLE_DEMO"])
			}
			if vars := failedVars(err); !slices.Contains(vars, "ENABLE_DEMO") || !strings.Contains(err.Error(), "ENABLE_DEMO") {
				t.Errorf("error %q names %v, not ENABLE_DEMO", err, vars)
			}
			if strings.Contains(err.Error(), "demo123") || strings.Contains(err.Error(), "password123") {
				t.Errorf("the error shows the password: %q", err)
			}
		})
	}
}
