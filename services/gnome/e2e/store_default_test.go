package e2e

import (
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/embedded"
	"github.com/gnome-platform/gnome/libs/testenv"
)

// gnome serve with the embedded store left at its default (auto), end to
// end: it runs on PostgreSQL where PostgreSQL is installed (and on SQLite,
// with a warning saying why, where it is not), says which at start and in
// /health/detailed, and an experiment pushed to it stores and reads its
// data through its actor: clicks inserted, counters raised by _id.
func TestDefaultStoreEndToEnd(t *testing.T) {
	const adminEmail, adminPassword = "store-default@example.org", "Store-Default-Passw0rd-2026"
	// A DATA_DIR PostgreSQL can reach: as root it runs as user postgres,
	// which t.TempDir's 0700 parents keep out.
	dataDir, err := os.MkdirTemp("", "gnome-e2e-default-store-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(dataDir) })
	if err := os.Chmod(dataDir, 0o711); err != nil {
		t.Fatal(err)
	}
	want := embedded.EngineSQLite
	if _, err := embedded.FindPostgres(); err == nil {
		want = embedded.EnginePostgres
	}
	httpAddr := freeAddr(t)
	env := serveEnv(dataDir, httpAddr, freeAddr(t), freeAddr(t))
	env["ADMIN_EMAIL"], env["ADMIN_PASSWORD"] = adminEmail, adminPassword
	env["EMBEDDED_STORE"] = "" // the default, not the SQLite start pins
	base := "http://" + httpAddr
	p := start(t, "gnome", env, "serve")
	waitHealthy(t, base, p)

	if out := p.Output(); !strings.Contains(out, "embedded store started") || !strings.Contains(out, "engine="+want) || !strings.Contains(out, "requested=auto") {
		t.Fatalf("the start log does not say the store runs on %s as auto chose:\n%s", want, out)
	}
	if want == embedded.EngineSQLite && !strings.Contains(p.Output(), "embedded store on SQLite, not PostgreSQL") {
		t.Errorf("auto settled on SQLite without saying why:\n%s", p.Output())
	}
	if want == embedded.EnginePostgres {
		if _, err := os.Stat(filepath.Join(dataDir, "db", "postgres", "postmaster.pid")); err != nil {
			t.Fatalf("no PostgreSQL runs on DATA_DIR/db/postgres: %v", err)
		}
	}

	// Upload: the clicks example, pushed as a user pushes it.
	admin := newCLIUser(t)
	admin.must(adminPassword+"\n", "login", "--url", base, "--email", adminEmail, "--password-stdin")
	src, err := filepath.Abs("../../../examples/clicks-js")
	if err != nil {
		t.Fatal(err)
	}
	admin.must("", "push", src)

	// The actor writes (a click inserted, a counter upserted by _id) and
	// reads (the counters) on the chosen engine.
	waitFor(t, 2*time.Minute, "the actor to take a click", func() bool {
		status, _, err := tryPostActor(httpAddr, "clicks-js", "/click", `{"button":"red"}`)
		return err == nil && status == http.StatusCreated
	})
	before := countersOf(t, httpAddr)
	for _, b := range []string{"red", "green", "red"} {
		if status, body := postActor(t, httpAddr, "clicks-js", "/click", `{"button":"`+b+`"}`); status != http.StatusCreated {
			t.Fatalf("click %s: %d %s", b, status, body)
		}
	}
	after := countersOf(t, httpAddr)
	if after["red"] != before["red"]+2 || after["green"] != before["green"]+1 || after["blue"] != before["blue"] {
		t.Errorf("counts went from %v to %v after red, green, red", before, after)
	}

	// An admin sees the engine in /health/detailed.
	var settings struct {
		Token string `json:"token"`
	}
	raw, err := os.ReadFile(admin.settingsFile())
	if err != nil || json.Unmarshal(raw, &settings) != nil || settings.Token == "" {
		t.Fatalf("no token in the CLI's settings (%v): %s", err, raw)
	}
	req, _ := http.NewRequest(http.MethodGet, base+"/health/detailed", nil)
	req.Header.Set("Authorization", "Bearer "+settings.Token)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var det struct {
		Components map[string]struct {
			Details map[string]any `json:"details"`
		} `json:"components"`
	}
	err = json.NewDecoder(resp.Body).Decode(&det)
	resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	if got := det.Components["database"].Details["engine"]; got != want {
		t.Errorf("/health/detailed database engine = %v, want %s: %+v", got, want, det.Components["database"])
	}

	// A clean stop takes PostgreSQL along.
	p.stop(t)
	if want == embedded.EnginePostgres {
		if _, err := os.Stat(filepath.Join(dataDir, "db", "postgres", "postmaster.pid")); !os.IsNotExist(err) {
			t.Errorf("postmaster.pid still there after gnome serve stopped: %v", err)
		}
	}
}

// countersOf are the clicks example's counters, read through its actor.
func countersOf(t *testing.T, httpAddr string) map[string]int {
	t.Helper()
	resp, err := client.Get(testenv.ExperimentURL(httpAddr, "clicks-js", "/experiments/clicks-js/api/counts"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var c struct {
		Counts map[string]int `json:"counts"`
	}
	if err := json.Unmarshal(body, &c); resp.StatusCode != http.StatusOK || err != nil || c.Counts == nil {
		t.Fatalf("GET /counts = %d %s (%v)", resp.StatusCode, body, err)
	}
	return c.Counts
}
