// Command layers checks the layering of the code (docs/architecture.md,
// "Layers"); `make check` runs it from the repository's root and fails on
// the first report.
//
//   - Contract packages (each service's subjects, messages and typed
//     client) and the domain packages they use import no bus, store,
//     telemetry, service-kit or HTTP code, directly or not: a service's
//     contract can be read, and compiled into any client, without the
//     platform's machinery.
//   - Shared packages never import a service; a service imports no other
//     service (the all-in-one gnome module composes them all).
//   - Services call each other only through their contracts' typed
//     clients: no bus.Call or bus.CallRaw outside libs/bus.
//   - MongoDB is reached only through repositories: no file outside the
//     ones listed in repositories imports the driver (bson filters stay
//     out of use cases).
package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
)

const module = "github.com/gnome-platform/gnome/"

// contracts are the packages that must stay free of the platform's
// machinery.
var contracts = []string{
	"libs/contract", "libs/authapi", "libs/uploadapi", "libs/exportapi", "libs/actorapi", "libs/events",
	"libs/experiments", "libs/bundle", "libs/apierr", "libs/buildinfo",
}

// machinery is what contracts may not depend on.
var machinery = []string{
	module + "libs/bus", module + "libs/store", module + "libs/telemetry", module + "libs/svc",
	module + "libs/jobs", module + "libs/scoped", module + "libs/embedded", module + "libs/httpx",
	module + "services/",
	"github.com/nats-io/", "go.mongodb.org/", "go.opentelemetry.io/", "github.com/gofiber/",
}

var services = []string{"edge", "auth", "upload", "export", "actorworker"}

// repositories are where the MongoDB driver may be imported: a directory
// (ending in /) or a file.
var repositories = []string{
	"libs/store/",                     // the platform's records: experiments, export logs, audit, imports
	"libs/scoped/",                    // an experiment's own data, within its scope
	"libs/exportpkg/",                 // an experiment's data written to and read from packages
	"libs/authz/",                     // Casbin's policies
	"libs/testenv/",                   // test infrastructure
	"services/auth/users.go",          // the auth service's accounts, which no other service reads
	"services/auth/tokenstore.go",     // the auth service's personal API tokens, which no other service reads
	"services/auth/resetstore.go",     // the auth service's pending password resets, which no other service reads
	"services/actorworker/hostops.go", // actors' data operations: Extended JSON to BSON for libs/scoped
}

func main() {
	graph := loadDeps(append([]string{"./libs/..."}, servicePatterns()...))
	var problems []string
	for _, c := range contracts {
		seen := map[string]bool{}
		for _, dep := range graph.under(c) {
			for _, m := range machinery {
				if strings.HasPrefix(dep, m) && !seen[m] {
					seen[m] = true
					problems = append(problems, fmt.Sprintf("%s depends on %s: contracts import no bus, store, telemetry, service or HTTP code", c, dep))
				}
			}
		}
	}
	for _, dep := range graph.under("libs") {
		if strings.HasPrefix(dep, module+"services/") {
			problems = append(problems, fmt.Sprintf("libs depend on %s: shared packages import no service", dep))
		}
	}
	for _, s := range services {
		for _, dep := range graph.under("services/" + s) {
			for _, other := range services {
				if other != s && (dep == module+"services/"+other || strings.HasPrefix(dep, module+"services/"+other+"/")) {
					problems = append(problems, fmt.Sprintf("services/%s depends on services/%s: services talk only over the bus", s, other))
				}
			}
		}
	}
	problems = append(problems, rawCalls()...)
	problems = append(problems, driverImports()...)
	slices.Sort(problems)
	problems = slices.Compact(problems)
	if len(problems) > 0 {
		for _, p := range problems {
			fmt.Fprintln(os.Stderr, "layers:", p)
		}
		os.Exit(1)
	}
}

func servicePatterns() []string {
	var out []string
	for _, s := range services {
		out = append(out, "./services/"+s+"/...")
	}
	return out
}

// depGraph maps each package of the repository to every package its
// non-test code depends on, directly or not.
type depGraph map[string][]string

// loadDeps asks go list once for the packages of patterns.
func loadDeps(patterns []string) depGraph {
	args := append([]string{"list", "-f", `{{.ImportPath}} {{join .Deps " "}}`}, patterns...)
	cmd := exec.Command("go", args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		fmt.Fprintf(os.Stderr, "layers: go list: %v\n", err)
		os.Exit(2)
	}
	g := depGraph{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 0 {
			g[fields[0]] = fields[1:]
		}
	}
	if err := sc.Err(); err != nil {
		fmt.Fprintf(os.Stderr, "layers: read go list: %v\n", err)
		os.Exit(2)
	}
	return g
}

// under is what the packages in dir (relative to the repository) and below
// it depend on.
func (g depGraph) under(dir string) []string {
	root := module + dir
	var deps []string
	for pkg, ds := range g {
		if pkg == root || strings.HasPrefix(pkg, root+"/") {
			deps = append(deps, ds...)
		}
	}
	return deps
}

var rawCall = regexp.MustCompile(`\bbus\.Call(Raw)?\b`)

// rawCalls finds bus.Call and bus.CallRaw in non-test code outside libs/bus.
func rawCalls() []string {
	var found []string
	for _, root := range []string{"libs", "services", "bench"} {
		_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") ||
				strings.HasPrefix(path, filepath.Join("libs", "bus")+string(filepath.Separator)) {
				return nil
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for i, line := range strings.Split(string(b), "\n") {
				if rawCall.MatchString(line) && !strings.HasPrefix(strings.TrimSpace(line), "//") {
					found = append(found, fmt.Sprintf("%s:%d: a call by subject; call the service through its contract's client", path, i+1))
				}
			}
			return nil
		})
	}
	return found
}

var driverImport = regexp.MustCompile(`"go\.mongodb\.org/mongo-driver`)

// driverImports finds non-test files outside the repositories that import
// the MongoDB driver.
func driverImports() []string {
	var found []string
	for _, root := range []string{"libs", "services"} {
		_ = filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
				return nil
			}
			slash := filepath.ToSlash(path)
			for _, r := range repositories {
				if slash == r || strings.HasSuffix(r, "/") && strings.HasPrefix(slash, r) {
					return nil
				}
			}
			b, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			if driverImport.Match(b) {
				found = append(found, fmt.Sprintf("%s imports the MongoDB driver: read and write through a repository (libs/store)", path))
			}
			return nil
		})
	}
	return found
}
