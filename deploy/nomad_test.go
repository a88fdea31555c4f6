package deploy_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"text/template"

	"github.com/hashicorp/hcl/v2"
	"github.com/hashicorp/hcl/v2/hclsyntax"
	"github.com/zclconf/go-cty/cty"
	"github.com/zclconf/go-cty/cty/function"
	"github.com/zclconf/go-cty/cty/function/stdlib"

	"github.com/gnome-platform/gnome/libs/config"
	"github.com/gnome-platform/gnome/libs/testenv"
)

// nomadFile is one jobspec, parsed and with its variables (defaults) and
// locals evaluated as `nomad job run` evaluates them.
type nomadFile struct {
	t    *testing.T
	body *hclsyntax.Body
	ctx  *hcl.EvalContext
}

func loadNomad(t *testing.T, name string) *nomadFile {
	t.Helper()
	path := filepath.Join(root, "deploy", "nomad", name)
	src, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	f, diags := hclsyntax.ParseConfig(src, path, hcl.InitialPos)
	if diags.HasErrors() {
		t.Fatalf("parse %s: %v", name, diags)
	}
	body := f.Body.(*hclsyntax.Body)
	n := &nomadFile{t: t, body: body, ctx: &hcl.EvalContext{
		Variables: map[string]cty.Value{},
		// The functions these files call, as Nomad defines them.
		Functions: map[string]function.Function{
			"merge":    stdlib.MergeFunc,
			"replace":  stdlib.ReplaceFunc,
			"tostring": stdlib.MakeToFunc(cty.String),
			// `nomad job run` from the repository's root.
			"file": function.New(&function.Spec{
				Params: []function.Parameter{{Name: "path", Type: cty.String}},
				Type:   function.StaticReturnType(cty.String),
				Impl: func(args []cty.Value, _ cty.Type) (cty.Value, error) {
					b, err := os.ReadFile(filepath.Join(root, args[0].AsString()))
					if err != nil {
						return cty.NilVal, fmt.Errorf("file: %w", err)
					}
					return cty.StringVal(string(b)), nil
				},
			}),
		},
	}}
	vars := map[string]cty.Value{}
	for _, b := range body.Blocks {
		if b.Type == "variable" {
			if a, ok := b.Body.Attributes["default"]; ok {
				vars[b.Labels[0]] = n.eval(a.Expr)
			}
		}
	}
	n.ctx.Variables["var"] = cty.ObjectVal(vars)
	// Locals may name each other: evaluate until all are known.
	locals := map[string]cty.Value{}
	n.ctx.Variables["local"] = cty.EmptyObjectVal
	for range 5 {
		for _, b := range body.Blocks {
			if b.Type != "locals" {
				continue
			}
			for name, a := range b.Body.Attributes {
				if v, diags := a.Expr.Value(n.ctx); !diags.HasErrors() {
					locals[name] = v
				}
			}
		}
		n.ctx.Variables["local"] = cty.ObjectVal(locals)
	}
	return n
}

func (n *nomadFile) eval(e hcl.Expression) cty.Value {
	n.t.Helper()
	v, diags := e.Value(n.ctx)
	if diags.HasErrors() {
		n.t.Fatalf("evaluate %s: %v", e.Range(), diags)
	}
	return v
}

func blocks(b *hclsyntax.Body, typ string) []*hclsyntax.Block {
	var out []*hclsyntax.Block
	for _, x := range b.Blocks {
		if x.Type == typ {
			out = append(out, x)
		}
	}
	return out
}

func block(b *hclsyntax.Body, typ, label string) *hclsyntax.Block {
	for _, x := range blocks(b, typ) {
		if label == "" || (len(x.Labels) > 0 && x.Labels[0] == label) {
			return x
		}
	}
	return nil
}

func (n *nomadFile) str(b *hclsyntax.Body, attr string) string {
	a, ok := b.Attributes[attr]
	if !ok {
		return ""
	}
	v := n.eval(a.Expr)
	if v.Type() == cty.Bool {
		return fmt.Sprint(v.True())
	}
	if v.Type() == cty.Number {
		return v.AsBigFloat().String()
	}
	return v.AsString()
}

func (n *nomadFile) strings(b *hclsyntax.Body, attr string) []string {
	a, ok := b.Attributes[attr]
	if !ok {
		return nil
	}
	var out []string
	for _, v := range n.eval(a.Expr).AsValueSlice() {
		out = append(out, v.AsString())
	}
	return out
}

// job is the file's job block.
func (n *nomadFile) job(name string) *hclsyntax.Block {
	n.t.Helper()
	j := block(n.body, "job", name)
	if j == nil {
		n.t.Fatalf("no job %q", name)
	}
	return j
}

// nomadVars are the Nomad variables an operator puts, as the files' headers
// say: what the templates render from.
func nomadVars(mongoURI string, natsPassword func(user string) string) map[string]map[string]string {
	gnome := map[string]string{"secret_key": testenv.SecretKey, "mongo_uri": mongoURI}
	nats := map[string]string{}
	for _, b := range append(slices.Clone(config.Binaries), "admin") {
		gnome["nats_password_"+b] = natsPassword(b)
		nats["nats_password_"+b] = natsPassword(b)
	}
	return map[string]map[string]string{
		"nomad/jobs/gnome":        gnome,
		"nomad/jobs/gnome/auth":   {"admin_password": "a-long-deployment-passphrase"},
		"nomad/jobs/gnome/export": {"key_id": "", "key": "", "bucket": "", "endpoint": ""},
		"nomad/jobs/nats":         nats,
	}
}

// render runs a task's template as Nomad does, with the variables vars and
// NATS at natsAddr (the service "nats"). It fails the test when the
// template reads a variable path its task may not: a task reads only
// nomad/jobs/<job>, nomad/jobs/<job>/<group> and
// nomad/jobs/<job>/<group>/<task>.
func render(t *testing.T, data, job, group, task, natsAddr string, vars map[string]map[string]string) string {
	t.Helper()
	out, err := renderErr(data, job, group, task, natsAddr, vars)
	if err != nil {
		t.Fatalf("%s's template: %v", task, err)
	}
	return out
}

func renderErr(data, job, group, task, natsAddr string, vars map[string]map[string]string) (string, error) {
	allowed := func(path string) bool {
		return path == "nomad/jobs/"+job || path == "nomad/jobs/"+job+"/"+group || path == "nomad/jobs/"+job+"/"+group+"/"+task
	}
	type svc struct {
		Address string
		Port    string
	}
	type varMeta struct{ Path string }
	host, port, _ := strings.Cut(natsAddr, ":")
	funcs := template.FuncMap{
		"nomadVar": func(path string) (map[string]string, error) {
			if !allowed(path) {
				return nil, fmt.Errorf("task %s/%s/%s may not read the variable %s", job, group, task, path)
			}
			v, ok := vars[path]
			if !ok {
				return nil, fmt.Errorf("variable %s does not exist: Nomad would wait for it forever", path)
			}
			return v, nil
		},
		"nomadVarList": func(prefix string) ([]varMeta, error) {
			if !allowed(prefix) {
				return nil, fmt.Errorf("task %s/%s/%s may not list the variables under %s", job, group, task, prefix)
			}
			var out []varMeta
			for p := range vars {
				if strings.HasPrefix(p, prefix) {
					out = append(out, varMeta{p})
				}
			}
			return out, nil
		},
		"nomadService": func(name string) []svc {
			if name == "nats" {
				return []svc{{host, port}}
			}
			return []svc{{"10.0.0.1", "6222"}, {"10.0.0.2", "6222"}, {"10.0.0.3", "6222"}}
		},
		"env": func(string) string { return "node-1" },
	}
	tmpl, err := template.New(task).Funcs(funcs).Option("missingkey=error").Parse(data)
	if err != nil {
		return "", err
	}
	var out bytes.Buffer
	if err := tmpl.Execute(&out, nil); err != nil {
		return "", err
	}
	return out.String(), nil
}

// taskEnv is the environment Nomad gives task binary of the gnome job: its
// env block and its env templates, rendered.
func taskEnv(t *testing.T, n *nomadFile, binary, natsAddr string, vars map[string]map[string]string) map[string]string {
	t.Helper()
	g := block(n.job("gnome").Body, "group", binary)
	if g == nil {
		t.Fatalf("no group %s", binary)
	}
	task := block(g.Body, "task", binary)
	if task == nil {
		t.Fatalf("group %s has no task %s", binary, binary)
	}
	env := map[string]string{}
	if a, ok := task.Body.Attributes["env"]; ok {
		for k, v := range n.eval(a.Expr).AsValueMap() {
			env[k] = v.AsString()
		}
	}
	for _, tp := range blocks(task.Body, "template") {
		if n.str(tp.Body, "env") != "true" {
			continue
		}
		out := render(t, n.str(tp.Body, "data"), "gnome", binary, binary, natsAddr, vars)
		for _, line := range strings.Split(out, "\n") {
			line = strings.TrimSpace(line)
			if k, v, ok := strings.Cut(line, "="); ok && line != "" {
				env[k] = v
			}
		}
	}
	return env
}

// The gnome job: two instances of each service, health checked on the
// /health its probe asks, and every setting each binary requires in
// production, from paths its task may read.
func TestNomadServices(t *testing.T) {
	n := loadNomad(t, "gnome.nomad.hcl")
	natsJob := loadNomad(t, "nats.nomad.hcl")
	natsCount := natsJob.str(block(natsJob.job("nats").Body, "group", "nats").Body, "count")
	vars := nomadVars("mongodb://db1,db2,db3/?replicaSet=rs0&retryWrites=true&w=majority", func(u string) string { return "pw-" + u })
	shared := map[string]map[string]string{}
	for _, b := range config.Binaries {
		t.Run(b, func(t *testing.T) {
			g := block(n.job("gnome").Body, "group", b)
			if g == nil {
				t.Fatalf("no group %s", b)
			}
			if c := n.str(g.Body, "count"); c != "2" {
				t.Errorf("count %s, want 2", c)
			}
			task := block(g.Body, "task", b)
			if ep := n.strings(block(task.Body, "config", "").Body, "entrypoint"); !slices.Equal(ep, []string{"/usr/local/bin/" + b}) {
				t.Errorf("entrypoint %v", ep)
			}
			env := taskEnv(t, n, b, "10.0.0.9:4222", vars)
			for _, name := range config.RequiredInProduction(b) {
				if env[name] == "" {
					t.Errorf("%s requires %s in production; the Nomad job does not give it", b, name)
				}
			}
			cfg, err := config.LoadFrom(lookup(env))
			if err == nil {
				err = cfg.RequireExternal(b)
			}
			if err != nil {
				t.Fatalf("%s refuses its Nomad environment: %v", b, err)
			}
			if !cfg.IsProduction() || cfg.NATSAuth.User != b || cfg.NATSAuth.Password != "pw-"+b {
				t.Errorf("production=%v, bus user %q: want production as its own user", cfg.IsProduction(), cfg.NATSAuth.User)
			}
			if fmt.Sprint(cfg.NATSReplicas) != natsCount {
				t.Errorf("NATS_REPLICAS %d with %s NATS servers", cfg.NATSReplicas, natsCount)
			}
			for name, bins := range config.SharedSettings {
				if slices.Contains(bins, b) {
					if shared[name] == nil {
						shared[name] = map[string]string{}
					}
					v, ok := env[name]
					if !ok {
						t.Errorf("%s reads %s; the Nomad job does not give it", b, name)
					}
					shared[name][b] = v
				}
			}
			// The health check asks what `probe` asks: /health on the
			// port METRICS_ADDR listens on.
			metricsPort := portOf(t, cfg.MetricsAddr)
			var portLabel string
			for _, nw := range blocks(g.Body, "network") {
				for _, p := range blocks(nw.Body, "port") {
					if n.str(p.Body, "to") == metricsPort {
						portLabel = p.Labels[0]
					}
				}
			}
			if portLabel == "" {
				t.Fatalf("no port of the group maps to METRICS_ADDR's %s", metricsPort)
			}
			checked := false
			for _, s := range blocks(g.Body, "service") {
				if n.str(s.Body, "port") != portLabel {
					continue
				}
				for _, c := range blocks(s.Body, "check") {
					if n.str(c.Body, "type") == "http" && n.str(c.Body, "path") == "/health" {
						checked = true
					}
				}
			}
			if !checked {
				t.Errorf("no health check of /health on port %q (METRICS_ADDR)", portLabel)
			}
		})
	}
	for name, vals := range shared {
		var vs []string
		for _, v := range vals {
			vs = append(vs, v)
		}
		if len(slices.Compact(slices.Sorted(slices.Values(vs)))) > 1 {
			t.Errorf("%s differs between %v", name, vals)
		}
	}
}

// A template that reads a variable outside its job's reach fails the
// check above: the export task reading nomad/jobs/gnome/b2 is refused.
func TestNomadVariablePathOutsideTheJob(t *testing.T) {
	vars := nomadVars("", func(string) string { return "x" })
	vars["nomad/jobs/gnome/b2"] = map[string]string{"key": "k"}
	_, err := renderErr(`{{ with nomadVar "nomad/jobs/gnome/b2" }}{{ .key }}{{ end }}`, "gnome", "export", "export", "127.0.0.1:4222", vars)
	if err == nil || !strings.Contains(err.Error(), "may not read") {
		t.Errorf("a template reading nomad/jobs/gnome/b2 from the export task: %v, want refused", err)
	}
	// Its own group's path is readable.
	if _, err := renderErr(`{{ with nomadVar "nomad/jobs/gnome/export" }}{{ .key }}{{ end }}`, "gnome", "export", "export", "127.0.0.1:4222", vars); err != nil {
		t.Errorf("the export group's own path: %v", err)
	}
}

// The NATS job: three servers at the tested version, one cluster whose
// routes are the cluster port of its members, and the bus users'
// passwords from the job's own variables.
func TestNomadNATSCluster(t *testing.T) {
	n := loadNomad(t, "nats.nomad.hcl")
	g := block(n.job("nats").Body, "group", "nats")
	if g == nil {
		t.Fatal("no group nats")
	}
	if c := n.str(g.Body, "count"); c != "3" {
		t.Errorf("count %s, want 3", c)
	}
	task := block(g.Body, "task", "nats")
	if img, want := n.str(block(task.Body, "config", "").Body, "image"), "nats:"+natsVersion(t)+"-alpine"; img != want {
		t.Errorf("image %s, want %s (libs/go.mod's nats-server)", img, want)
	}
	ports := map[string]string{}
	for _, nw := range blocks(g.Body, "network") {
		for _, p := range blocks(nw.Body, "port") {
			ports[p.Labels[0]] = n.str(p.Body, "static")
		}
	}
	routeService := ""
	for _, s := range blocks(g.Body, "service") {
		if n.str(s.Body, "port") == "cluster" {
			routeService = n.str(s.Body, "name")
		}
	}
	if routeService == "" || ports["cluster"] == "" {
		t.Fatalf("no service registers the cluster port (ports %v)", ports)
	}
	vars := nomadVars("", func(u string) string { return "pw-" + u })
	var conf, secrets string
	for _, tp := range blocks(task.Body, "template") {
		out := render(t, n.str(tp.Body, "data"), "nats", "nats", "nats", "127.0.0.1:4222", vars)
		switch {
		case strings.Contains(out, "cluster {"):
			conf = out
		case n.str(tp.Body, "env") == "true":
			secrets = out
		}
	}
	listen := regexp.MustCompile(`(?s)cluster\s*\{.*?listen:\s*[\d.]+:(\d+)`).FindStringSubmatch(conf)
	if listen == nil || listen[1] != ports["cluster"] {
		t.Errorf("the cluster listens on %v, its port is %s", listen, ports["cluster"])
	}
	routes := regexp.MustCompile(`nats-route://[\d.]+:(\d+)`).FindAllStringSubmatch(conf, -1)
	if len(routes) != 3 {
		t.Errorf("%d routes rendered from %s, want the 3 members", len(routes), routeService)
	}
	if !strings.Contains(n.str(block(g.Body, "task", "nats").Body, "kill_timeout"), "s") {
		t.Error("no kill timeout")
	}
	for _, b := range config.Binaries {
		if !strings.Contains(secrets, "GNOME_NATS_"+strings.ToUpper(b)+"_PASSWORD=pw-"+b) {
			t.Errorf("nats-server gets no password for %s", b)
		}
	}
	if !strings.Contains(conf, "include ./nats-users.conf") {
		t.Error("the NATS configuration does not include the bus users")
	}
}
