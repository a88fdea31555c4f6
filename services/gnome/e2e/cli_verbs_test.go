package e2e

import (
	"encoding/csv"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/testenv"
)

// postActor sends a JSON body to an experiment's actor route as an
// anonymous visitor, on the experiment's origin.
func postActor(t *testing.T, httpAddr, slug, path, body string) (int, string) {
	t.Helper()
	status, b, err := tryPostActor(httpAddr, slug, path, body)
	if err != nil {
		t.Fatalf("POST %s%s: %v", slug, path, err)
	}
	return status, b
}

// tryPostActor is postActor with the client's error returned: while an
// actor starts (the first call compiles its module, seconds on a busy
// machine), a call may outlast the client's timeout, and the caller waits
// for the actor by calling again.
func tryPostActor(httpAddr, slug, path, body string) (int, string, error) {
	resp, err := client.Post(testenv.ExperimentURL(httpAddr, slug, "/experiments/"+slug+"/api"+path), "application/json", strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// copyDir copies the regular files of src under dst.
func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(filepath.Join(dst, rel)), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

// The client's versions, rollback, data and new verbs against one gnome
// serve, and the servers' refusal of a taken port before anything starts.
func TestCommandLineVersionsDataNew(t *testing.T) {
	const adminEmail, adminPassword = "cli-verbs@example.org", "Cli-Verbs-Passw0rd-2026"
	httpAddr := freeAddr(t)
	env := serveEnv(t.TempDir(), httpAddr, freeAddr(t), freeAddr(t))
	env["ADMIN_EMAIL"], env["ADMIN_PASSWORD"] = adminEmail, adminPassword
	base := "http://" + httpAddr
	p := start(t, "gnome", env, "serve")
	waitHealthy(t, base, p)

	admin := newCLIUser(t)
	admin.must(adminPassword+"\n", "login", "--url", base, "--email", adminEmail, "--password-stdin")

	// Two pushes of clicks-js: the example, then with another description.
	src, err := filepath.Abs("../../../examples/clicks-js")
	if err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(t.TempDir(), "clicks-js")
	copyDir(t, src, work)
	admin.must("", "push", work)
	raw, _ := os.ReadFile(filepath.Join(work, "manifest.json"))
	edited := strings.Replace(string(raw), `"name": "Click tracker"`, `"name": "Click tracker, second"`, 1)
	if edited == string(raw) {
		t.Fatal("the example's manifest changed: the test cannot make a second version")
	}
	if err := os.WriteFile(filepath.Join(work, "manifest.json"), []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	admin.must("", "push", work)

	type version struct {
		Version    int    `json:"version"`
		Checksum   string `json:"checksum"`
		Current    bool   `json:"current"`
		Available  bool   `json:"available"`
		UploadedBy string `json:"uploaded_by"`
		Size       int64  `json:"size"`
	}
	type versions struct {
		Current  int       `json:"current"`
		Versions []version `json:"versions"`
	}

	t.Run("versions after two pushes", func(t *testing.T) {
		admin.t = t
		v := decodeOut[versions](t, admin.must("", "versions", "clicks-js", "--json"))
		if v.Current != 2 || len(v.Versions) != 2 || v.Versions[0].Version != 2 || !v.Versions[0].Current || v.Versions[1].Current ||
			!v.Versions[1].Available || v.Versions[1].UploadedBy != adminEmail || v.Versions[0].Checksum == v.Versions[1].Checksum {
			t.Fatalf("versions --json = %+v", v)
		}
		r := admin.must("", "versions", "clicks-js")
		lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
		if len(lines) < 3 || !strings.Contains(lines[0], "VERSION") || !strings.HasPrefix(lines[1], "* 2") ||
			!strings.Contains(lines[1], v.Versions[0].Checksum[:12]) || !strings.Contains(lines[2], adminEmail) {
			t.Errorf("versions table:\n%s", r.stdout)
		}
		if r := admin.want(1, nil, "versions", "no-such-experiment"); !strings.Contains(r.stderr, "not_found") {
			t.Errorf("versions of an unknown slug: %s", r.stderr)
		}
	})

	t.Run("rollback, then the same again", func(t *testing.T) {
		admin.t = t
		admin.want(2, nil, "rollback", "clicks-js", "one")
		admin.want(2, nil, "rollback", "clicks-js")
		r := admin.must("", "rollback", "clicks-js", "1")
		if !strings.Contains(r.stdout, "Rolled back clicks-js: version 1 is current (was 2)") {
			t.Errorf("rollback says:\n%s", r.stdout)
		}
		if e := decodeOut[experimentView](t, admin.must("", "status", "clicks-js", "--json")); e.Version != 1 || e.Name != "Click tracker" {
			t.Errorf("after the rollback, status = %+v", e)
		}
		type rolled struct {
			Changed    bool `json:"changed"`
			From       int  `json:"from"`
			Experiment struct {
				Version int `json:"version"`
			} `json:"experiment"`
		}
		again := decodeOut[rolled](t, admin.must("", "rollback", "clicks-js", "1", "--json"))
		if again.Changed || again.From != 1 || again.Experiment.Version != 1 {
			t.Errorf("a second rollback --json = %+v", again)
		}
		if r := admin.must("", "rollback", "clicks-js", "1"); !strings.Contains(r.stdout, "already current") {
			t.Errorf("a second rollback says:\n%s", r.stdout)
		}
		if e := decodeOut[cliError](t, admin.want(1, nil, "rollback", "clicks-js", "99", "--json")); e.Error.Status < 400 || e.Error.Status >= 500 {
			t.Errorf("rollback to a version never made = %+v", e)
		}
	})

	t.Run("data: the clicks as CSV", func(t *testing.T) {
		admin.t = t
		clicked := []string{"red", "blue", "red", "green", "red"}
		waitFor(t, 30*time.Second, "the actor of clicks-js to answer", func() bool {
			code, _, err := tryPostActor(httpAddr, "clicks-js", "/click", `{"button":"nope"}`)
			return err == nil && code == http.StatusUnprocessableEntity
		})
		for _, b := range clicked {
			if code, body := postActor(t, httpAddr, "clicks-js", "/click", `{"button":"`+b+`"}`); code != http.StatusCreated {
				t.Fatalf("click %s: %d %s", b, code, body)
			}
		}
		type list struct {
			Collections []struct {
				Name      string `json:"name"`
				Documents int64  `json:"documents"`
			} `json:"collections"`
		}
		l := decodeOut[list](t, admin.must("", "data", "clicks-js", "--json"))
		// The example keeps every click, and a counter per button.
		buttons := map[string]bool{}
		for _, b := range clicked {
			buttons[b] = true
		}
		if len(l.Collections) != 2 || l.Collections[0].Name != "clicks" || l.Collections[0].Documents != int64(len(clicked)) ||
			l.Collections[1].Name != "counts" || l.Collections[1].Documents != int64(len(buttons)) {
			t.Fatalf("data --json = %+v: want clicks with %d documents and counts with %d", l, len(clicked), len(buttons))
		}
		if r := admin.must("", "data", "clicks-js"); !strings.Contains(r.stdout, "COLLECTION") || !strings.Contains(r.stdout, "clicks") {
			t.Errorf("data:\n%s", r.stdout)
		}

		r := admin.must("", "data", "clicks-js", "clicks", "--csv", "-o", "-")
		rows, err := csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
		if err != nil || len(rows) != len(clicked)+1 {
			t.Fatalf("data -o - is no CSV of %d rows: %v\n%s", len(clicked), err, r.stdout)
		}
		col := slices.Index(rows[0], "button")
		by := slices.Index(rows[0], "by")
		if col < 0 || by < 0 {
			t.Fatalf("CSV header %v lacks button and by", rows[0])
		}
		var got []string
		for _, row := range rows[1:] {
			got = append(got, row[col])
			if row[by] != "anonymous" {
				t.Errorf("row %v: by = %q", row, row[by])
			}
		}
		slices.Sort(got)
		want := slices.Clone(clicked)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("CSV buttons = %v, clicked %v", got, want)
		}
		if !strings.Contains(r.stderr, "building") {
			t.Errorf("data shows no progress on stderr:\n%s", r.stderr)
		}

		// To a file, as JSON Lines, with --json: the checksum verified.
		out := filepath.Join(t.TempDir(), "clicks.jsonl")
		type saved struct {
			Status   string `json:"status"`
			File     string `json:"file"`
			Verified bool   `json:"checksum_verified"`
		}
		s := decodeOut[saved](t, admin.must("", "data", "clicks-js", "clicks", "--jsonl", "-o", out, "--json"))
		b, _ := os.ReadFile(out)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		if s.Status != "ready" || !s.Verified || s.File != out || len(lines) != len(clicked) || !json.Valid([]byte(lines[0])) {
			t.Errorf("data --jsonl -o = %+v, file:\n%s", s, b)
		}
		// A range before any click holds none of them.
		r = admin.must("", "data", "clicks-js", "clicks", "--from", "2020-01-01", "--to", "2020-01-02", "-o", "-")
		if rows, _ := csv.NewReader(strings.NewReader(r.stdout)).ReadAll(); len(rows) > 1 {
			t.Errorf("a range of 2020 gives %d rows", len(rows)-1)
		}
		admin.want(2, nil, "data", "clicks-js", "clicks", "--csv", "--jsonl")
		admin.want(2, nil, "data", "clicks-js", "clicks", "--from", "yesterday")
		admin.want(2, nil, "data", "clicks-js", "-o", "x.csv")
		if r := admin.want(1, nil, "data", "clicks-js", "no.such", "-o", "-"); !strings.Contains(r.stderr, "field: /collection") {
			t.Errorf("a bad collection name: %s", r.stderr)
		}
	})

	t.Run("new --lang js, push, call its actor", func(t *testing.T) {
		admin.t = t
		dir := filepath.Join(t.TempDir(), "hello-new")
		admin.must("", "new", "hello-new", "--dir", dir)
		if r := admin.want(1, nil, "new", "hello-new", "--dir", dir); !strings.Contains(r.stderr, "not empty") {
			t.Errorf("new into the same folder: %s", r.stderr)
		}
		r := admin.must("", "push", dir)
		if !strings.Contains(r.stdout, "Pushed hello-new (created): version 1") {
			t.Fatalf("push of the scaffold:\n%s\n%s", r.stdout, r.stderr)
		}
		var code int
		var body string
		waitFor(t, 30*time.Second, "the scaffold's actor to count a visit", func() bool {
			var err error
			code, body, err = tryPostActor(httpAddr, "hello-new", "/visit", `{}`)
			return err == nil && code == http.StatusCreated
		})
		if !strings.Contains(body, `"visits":1`) {
			t.Errorf("the first visit answers %s", body)
		}
		code, page := get(t, testenv.ExperimentURL(httpAddr, "hello-new", "/experiments/hello-new/"))
		if code != http.StatusOK || !strings.Contains(string(page), `api("visits")`) {
			t.Errorf("the scaffold's page: %d", code)
		}
	})

	t.Run("new --lang go refuses to push before the build", func(t *testing.T) {
		admin.t = t
		dir := filepath.Join(t.TempDir(), "go-new")
		admin.must("", "new", "go-new", "--lang", "go", "--dir", dir)
		r := admin.want(1, nil, "push", dir)
		if !strings.Contains(r.stderr, "actor.wasm") || !strings.Contains(r.stderr, "GOOS=wasip1 GOARCH=wasm go build") {
			t.Errorf("push of an unbuilt Go scaffold: %s", r.stderr)
		}
	})

	t.Run("a taken port is named before anything starts", func(t *testing.T) {
		admin.t = t
		held, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer held.Close()
		taken := held.Addr().String()
		data := t.TempDir()
		cases := []struct {
			env  []string
			args []string
			want string
		}{
			{[]string{"HTTP_ADDR=" + taken, "EMBEDDED_NATS_ADDR=" + freeAddr(t), "EMBEDDED_STORE_ADDR=" + freeAddr(t)}, []string{"serve"}, "HTTP_ADDR " + taken},
			{[]string{"HTTP_ADDR=" + freeAddr(t), "EMBEDDED_NATS_ADDR=" + taken, "EMBEDDED_STORE_ADDR=" + freeAddr(t)}, []string{"serve"}, "EMBEDDED_NATS_ADDR " + taken},
			{[]string{"HTTP_ADDR=" + freeAddr(t), "EMBEDDED_NATS_ADDR=" + freeAddr(t), "EMBEDDED_STORE_ADDR=" + taken}, []string{"serve"}, "EMBEDDED_STORE_ADDR " + taken},
		}
		for _, c := range cases {
			r := admin.run("", append(c.env, "DATA_DIR="+filepath.Join(data, "d")), c.args...)
			if r.code != 1 || !strings.Contains(r.stderr, c.want) || !strings.Contains(r.stderr, "in use") {
				t.Errorf("gnome %v with %v: exit %d, %s", c.args, c.env, r.code, r.stderr)
			}
		}
		if _, err := os.Stat(filepath.Join(data, "d")); err == nil {
			t.Error("a refused serve made its data directory: it started something")
		}

		// gnome standalone names --addr, or HTTP_ADDR when that chose it.
		pkg := filepath.Join(t.TempDir(), "clicks.zip")
		admin.must("", "export", "clicks-js", "--type", "standalone", "-o", pkg)
		r := admin.run("", []string{"DATA_DIR=" + filepath.Join(data, "s")}, "standalone", pkg, "--addr", taken)
		if r.code != 1 || !strings.Contains(r.stderr, "--addr "+taken) {
			t.Errorf("standalone --addr taken: exit %d, %s", r.code, r.stderr)
		}
		r = admin.run("", []string{"DATA_DIR=" + filepath.Join(data, "s"), "HTTP_ADDR=" + taken}, "standalone", pkg)
		if r.code != 1 || !strings.Contains(r.stderr, "HTTP_ADDR "+taken) {
			t.Errorf("standalone with HTTP_ADDR taken: exit %d, %s", r.code, r.stderr)
		}
	})
}

// experimentView is what status --json prints, as far as these tests read.
type experimentView struct {
	Slug    string `json:"slug"`
	Name    string `json:"name"`
	Version int    `json:"version"`
}
