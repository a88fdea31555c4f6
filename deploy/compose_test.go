package deploy_test

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v4"

	"github.com/gnome-platform/gnome/libs/config"
	"github.com/gnome-platform/gnome/libs/testenv"
)

// root is the repository's root, where docker-compose.yml is.
const root = ".."

// composeVars are what an operator's .env gives docker-compose.yml: every
// value it requires (deploy/compose/env.example), none of them weak.
func composeVars() map[string]string {
	v := map[string]string{
		"GNOME_DOMAIN":   "localhost",
		"SECRET_KEY":     testenv.SecretKey,
		"ADMIN_EMAIL":    "admin@gnome.test",
		"ADMIN_PASSWORD": "a-long-deployment-passphrase",
	}
	for _, b := range append(slices.Clone(config.Binaries), "admin") {
		v["GNOME_NATS_"+strings.ToUpper(b)+"_PASSWORD"] = "bus-password-of-" + b + "-0123456789"
	}
	return v
}

// loadCompose loads docker-compose.yml as `docker compose config` does,
// with vars as the environment.
func loadCompose(t *testing.T, vars map[string]string) (*types.Project, error) {
	t.Helper()
	abs, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	return loader.LoadWithContext(context.Background(), types.ConfigDetails{
		WorkingDir:  abs,
		ConfigFiles: []types.ConfigFile{{Filename: filepath.Join(abs, "docker-compose.yml")}},
		Environment: vars,
	}, func(o *loader.Options) { o.SetProjectName("gnome", true) })
}

func mustCompose(t *testing.T) *types.Project {
	t.Helper()
	p, err := loadCompose(t, composeVars())
	if err != nil {
		t.Fatalf("load docker-compose.yml: %v", err)
	}
	return p
}

// composeEnv is the environment compose gives service name.
func composeEnv(t *testing.T, p *types.Project, name string) map[string]string {
	t.Helper()
	s, ok := p.Services[name]
	if !ok {
		t.Fatalf("docker-compose.yml has no service %q", name)
	}
	env := map[string]string{}
	for k, v := range s.Environment {
		if v != nil {
			env[k] = *v
		}
	}
	return env
}

// natsVersion is the nats-server version libs/go.mod pins: the one every
// test runs against.
func natsVersion(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, "libs", "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`github.com/nats-io/nats-server/v2 v(\d+\.\d+\.\d+)`).FindSubmatch(b)
	if m == nil {
		t.Fatal("libs/go.mod requires no nats-server")
	}
	return string(m[1])
}

// Every value the file requires stops `docker compose config` with a
// message naming it when unset.
func TestComposeRefusesMissingSettings(t *testing.T) {
	for name := range composeVars() {
		vars := composeVars()
		delete(vars, name)
		_, err := loadCompose(t, vars)
		if err == nil {
			t.Errorf("docker-compose.yml loads without %s", name)
		} else if !strings.Contains(err.Error(), name) {
			t.Errorf("without %s: %v does not name it", name, err)
		}
	}
}

// Each service binary: two instances, its own entrypoint, a health check
// that runs its probe, the start order, and every setting it requires in
// production (config.RequiredInProduction), accepted by the same checks
// the binary makes at start.
func TestComposeServices(t *testing.T) {
	p := mustCompose(t)
	for _, b := range config.Binaries {
		t.Run(b, func(t *testing.T) {
			s := p.Services[b]
			if s.Name == "" {
				t.Fatalf("no service %s", b)
			}
			if n := s.GetScale(); n != 2 {
				t.Errorf("%d instances, want 2", n)
			}
			if want := []string{"/usr/local/bin/" + b}; !slices.Equal(s.Entrypoint, want) {
				t.Errorf("entrypoint %v, want %v", s.Entrypoint, want)
			}
			if s.HealthCheck == nil || s.HealthCheck.Disable {
				t.Fatal("no health check")
			}
			if want := []string{"CMD", "/usr/local/bin/" + b, "probe"}; !slices.Equal(s.HealthCheck.Test, want) {
				t.Errorf("health check %v, want %v (exec form: the image has no shell)", s.HealthCheck.Test, want)
			}
			env := composeEnv(t, p, b)
			if env["G_NOME_ENV"] != config.Production {
				t.Errorf("G_NOME_ENV=%q, want production", env["G_NOME_ENV"])
			}
			for _, name := range config.RequiredInProduction(b) {
				if env[name] == "" {
					t.Errorf("%s requires %s in production; docker-compose.yml does not give it", b, name)
				}
			}
			cfg, err := config.LoadFrom(lookup(env))
			if err == nil {
				err = cfg.RequireExternal(b)
			}
			if err != nil {
				t.Fatalf("%s refuses its compose environment: %v", b, err)
			}
			if cfg.MetricsAddr == "" {
				t.Error("no METRICS_ADDR: nothing to probe or scrape")
			}
			if cfg.NATSAuth.User != b {
				t.Errorf("NATS_USER=%q, want its own bus user %q", cfg.NATSAuth.User, b)
			}
			if want := composeEnv(t, p, "nats-1")["GNOME_NATS_"+strings.ToUpper(b)+"_PASSWORD"]; cfg.NATSAuth.Password != want || want == "" {
				t.Errorf("NATS_PASSWORD is not the one nats-server has for %s", b)
			}
			for dep, cond := range map[string]string{
				"nats-1": types.ServiceConditionHealthy, "nats-2": types.ServiceConditionHealthy, "nats-3": types.ServiceConditionHealthy,
				"mongo-init": types.ServiceConditionCompletedSuccessfully,
			} {
				if d, ok := s.DependsOn[dep]; !ok || d.Condition != cond {
					t.Errorf("depends_on %s: %+v, want condition %s", dep, d, cond)
				}
			}
		})
	}
}

// Settings two binaries read are given to both, with the same value.
func TestComposeSharedSettings(t *testing.T) {
	p := mustCompose(t)
	for name, bins := range config.SharedSettings {
		vals := map[string]string{}
		for _, b := range bins {
			v, ok := composeEnv(t, p, b)[name]
			if !ok {
				t.Errorf("%s reads %s; docker-compose.yml does not give it", b, name)
			}
			vals[b] = v
		}
		if len(slices.Compact(slices.Sorted(maps.Values(vals)))) > 1 {
			t.Errorf("%s differs between %v", name, vals)
		}
	}
}

// Three NATS servers at the tested version, one cluster: each names the
// other two in its routes, on the port the cluster listens on, and the
// platform keeps three replicas.
func TestComposeNATSCluster(t *testing.T) {
	p := mustCompose(t)
	var nodes []string
	names := map[string]bool{}
	for name, s := range p.Services {
		if strings.HasPrefix(s.Image, "nats:") {
			nodes = append(nodes, name)
			if want := "nats:" + natsVersion(t) + "-alpine"; s.Image != want {
				t.Errorf("%s runs %s, want %s (libs/go.mod's nats-server)", name, s.Image, want)
			}
			sn := composeEnv(t, p, name)["NATS_SERVER_NAME"]
			if sn == "" || names[sn] {
				t.Errorf("%s: server name %q missing or not unique", name, sn)
			}
			names[sn] = true
			if s.HealthCheck == nil || len(s.HealthCheck.Test) == 0 {
				t.Errorf("%s has no health check", name)
			}
		}
	}
	slices.Sort(nodes)
	if len(nodes) != 3 {
		t.Fatalf("NATS nodes %v, want 3", nodes)
	}
	conf, err := os.ReadFile(filepath.Join(root, "deploy", "compose", "nats.conf"))
	if err != nil {
		t.Fatal(err)
	}
	listen := regexp.MustCompile(`(?s)cluster\s*\{.*?listen:\s*[\d.]+:(\d+)`).FindSubmatch(conf)
	if listen == nil {
		t.Fatal("nats.conf has no cluster listen address")
	}
	var routed []string
	for _, m := range regexp.MustCompile(`nats-route://([\w.-]+):(\d+)`).FindAllSubmatch(conf, -1) {
		routed = append(routed, string(m[1]))
		if string(m[2]) != string(listen[1]) {
			t.Errorf("route to %s on port %s, the cluster listens on %s", m[1], m[2], listen[1])
		}
	}
	slices.Sort(routed)
	if !slices.Equal(routed, nodes) {
		t.Errorf("routes %v, NATS services %v", routed, nodes)
	}
	if !strings.Contains(string(conf), "$NATS_SERVER_NAME") || !strings.Contains(string(conf), "include ./nats-users.conf") {
		t.Error("nats.conf takes no server name from the environment, or does not include the bus users")
	}
	users, err := os.ReadFile(filepath.Join(root, "deploy", "compose", "nats-users.conf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, b := range config.Binaries {
		if !strings.Contains(string(users), fmt.Sprintf("user: %q\n      password: $GNOME_NATS_%s_PASSWORD", b, strings.ToUpper(b))) {
			t.Errorf("nats-users.conf has no user %s with password $GNOME_NATS_%s_PASSWORD", b, strings.ToUpper(b))
		}
	}
	for _, b := range config.Binaries {
		if r := composeEnv(t, p, b)["NATS_REPLICAS"]; r != fmt.Sprint(len(nodes)) {
			t.Errorf("%s: NATS_REPLICAS=%q with %d nodes", b, r, len(nodes))
		}
		u := composeEnv(t, p, b)["NATS_URL"]
		for _, n := range nodes {
			if !strings.Contains(u, "nats://"+n+":4222") {
				t.Errorf("%s: NATS_URL %q does not name %s", b, u, n)
			}
		}
	}
}

// MongoDB: a replica set of the mongo services, initiated by a one-shot
// service, reached with retryable, majority-acknowledged writes.
func TestComposeMongoReplicaSet(t *testing.T) {
	p := mustCompose(t)
	var members []string
	for name, s := range p.Services {
		if strings.HasPrefix(s.Image, "mongo:") && name != "mongo-init" {
			members = append(members, name+":27017")
			if !slices.Contains(s.Command, "--replSet") {
				t.Errorf("%s does not run as a replica set member: %v", name, s.Command)
			}
		}
	}
	slices.Sort(members)
	if len(members) < 3 {
		t.Errorf("replica set members %v, want 3", members)
	}
	for _, b := range config.Binaries {
		u, err := url.Parse(composeEnv(t, p, b)["MONGO_URI"])
		if err != nil {
			t.Fatalf("%s: MONGO_URI: %v", b, err)
		}
		q := u.Query()
		if q.Get("replicaSet") == "" || q.Get("retryWrites") != "true" || q.Get("w") != "majority" {
			t.Errorf("%s: MONGO_URI %s lacks replicaSet, retryWrites=true or w=majority", b, u)
		}
		hosts := strings.Split(u.Host, ",")
		slices.Sort(hosts)
		if !slices.Equal(hosts, members) {
			t.Errorf("%s: MONGO_URI hosts %v, members %v", b, hosts, members)
		}
	}
	init, ok := p.Services["mongo-init"]
	if !ok {
		t.Fatal("no mongo-init service")
	}
	if init.Restart != "no" {
		t.Errorf("mongo-init restart %q: a one-shot must not restart", init.Restart)
	}
	script, err := os.ReadFile(filepath.Join(root, "deploy", "compose", "mongo-init.js"))
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range members {
		if !strings.Contains(string(script), `"`+m+`"`) {
			t.Errorf("mongo-init.js does not make %s a member", m)
		}
	}
	if !strings.Contains(string(script), "rs.initiate") || !strings.Contains(string(script), "rs.status()") {
		t.Error("mongo-init.js does not initiate only when not yet initiated")
	}
	for dep := range init.DependsOn {
		if init.DependsOn[dep].Condition != types.ServiceConditionHealthy {
			t.Errorf("mongo-init starts before %s is healthy", dep)
		}
	}
}

// The proxy balances over every edge instance and checks their health;
// Prometheus scrapes every service's METRICS_ADDR and may (its address is
// in METRICS_ALLOWED_CIDRS); every image names a version.
func TestComposeProxyAndObservability(t *testing.T) {
	p := mustCompose(t)
	for name, s := range p.Services {
		if !strings.Contains(s.Image, ":") || strings.HasSuffix(s.Image, ":latest") {
			t.Errorf("%s: image %q names no version", name, s.Image)
		}
	}
	proxy := p.Services["proxy"]
	if d := proxy.DependsOn["edge"]; d.Condition != types.ServiceConditionHealthy {
		t.Errorf("the proxy does not wait for a healthy edge: %+v", d)
	}
	caddy, err := os.ReadFile(filepath.Join(root, "deploy", "compose", "Caddyfile"))
	if err != nil {
		t.Fatal(err)
	}
	edgePort := portOf(t, composeEnv(t, p, "edge")["HTTP_ADDR"])
	for i := 1; i <= edgeScale(p); i++ {
		if up := fmt.Sprintf("gnome-edge-%d:%s", i, edgePort); !strings.Contains(string(caddy), up) {
			t.Errorf("the Caddyfile does not balance over %s", up)
		}
	}
	if !strings.Contains(string(caddy), "health_uri /health") {
		t.Error("the Caddyfile checks no edge's health")
	}

	var prom struct {
		ScrapeConfigs []struct {
			DNSSD []struct {
				Names []string `yaml:"names"`
				Port  int      `yaml:"port"`
			} `yaml:"dns_sd_configs"`
		} `yaml:"scrape_configs"`
	}
	b, err := os.ReadFile(filepath.Join(root, "deploy", "prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, &prom); err != nil {
		t.Fatalf("prometheus.yml: %v", err)
	}
	scraped := map[string]bool{}
	for _, sc := range prom.ScrapeConfigs {
		for _, d := range sc.DNSSD {
			for _, n := range d.Names {
				scraped[fmt.Sprintf("%s:%d", n, d.Port)] = true
			}
		}
	}
	promAddr := ""
	for _, n := range p.Services["prometheus"].Networks {
		if n != nil {
			promAddr = n.Ipv4Address
		}
	}
	for _, bin := range config.Binaries {
		env := composeEnv(t, p, bin)
		if target := bin + ":" + portOf(t, env["METRICS_ADDR"]); !scraped[target] {
			t.Errorf("Prometheus does not scrape %s", target)
		}
		if promAddr == "" || !strings.Contains(env["METRICS_ALLOWED_CIDRS"], promAddr) {
			t.Errorf("%s: METRICS_ALLOWED_CIDRS %q does not let Prometheus (%s) read /metrics", bin, env["METRICS_ALLOWED_CIDRS"], promAddr)
		}
		if !strings.Contains(env["OTEL_EXPORTER_OTLP_ENDPOINT"], "otel-collector") {
			t.Errorf("%s sends its traces nowhere", bin)
		}
	}
	if _, ok := p.Services["otel-collector"]; !ok {
		t.Error("no OpenTelemetry Collector")
	}
}

func portOf(t *testing.T, addr string) string {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return port
}

func lookup(env map[string]string) config.Getenv {
	return func(k string) (string, bool) { v, ok := env[k]; return v, ok }
}

func edgeScale(p *types.Project) int {
	s := p.Services["edge"]
	return s.GetScale()
}
