package e2e

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"
)

// cliRun is one run of the built gnome binary as a client.
type cliRun struct {
	stdout, stderr string
	code           int
}

// cliUser runs the client with its own config directory, as one person on
// one machine.
type cliUser struct {
	t      *testing.T
	config string // XDG_CONFIG_HOME
	env    []string
}

func newCLIUser(t *testing.T) *cliUser {
	home := t.TempDir()
	return &cliUser{t: t, config: filepath.Join(home, "config"),
		env: []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, "config")}}
}

func (u *cliUser) settingsFile() string { return filepath.Join(u.config, "gnome", "config.json") }

// run runs gnome with args, stdin and extra environment variables.
func (u *cliUser) run(stdin string, extra []string, args ...string) cliRun {
	u.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(bins, "gnome"), args...)
	cmd.Env = append(slices.Clone(u.env), extra...)
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := cliRun{stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	default:
		u.t.Fatalf("gnome %v: %v", args, err)
	}
	return r
}

// must runs gnome and fails the test unless it exits 0.
func (u *cliUser) must(stdin string, args ...string) cliRun {
	u.t.Helper()
	r := u.run(stdin, nil, args...)
	if r.code != 0 {
		u.t.Fatalf("gnome %v: exit %d\nstdout: %s\nstderr: %s", args, r.code, r.stdout, r.stderr)
	}
	return r
}

// want runs gnome and checks its exit code.
func (u *cliUser) want(code int, extra []string, args ...string) cliRun {
	u.t.Helper()
	r := u.run("", extra, args...)
	if r.code != code {
		u.t.Errorf("gnome %v: exit %d, want %d\nstdout: %s\nstderr: %s", args, r.code, code, r.stdout, r.stderr)
	}
	return r
}

func decodeOut[T any](t *testing.T, r cliRun) T {
	t.Helper()
	var v T
	if err := json.Unmarshal([]byte(r.stdout), &v); err != nil {
		t.Fatalf("--json output is not JSON: %v\n%s", err, r.stdout)
	}
	return v
}

type cliError struct {
	Error struct {
		Code     string `json:"code"`
		Message  string `json:"message"`
		Status   int    `json:"status"`
		ExitCode int    `json:"exit_code"`
	} `json:"error"`
}

// The command-line client, built and run as a user runs it, against one
// gnome serve: sign-in and its refusals, push with progress, ls, status,
// export with the download verified, tokens, and users as admin and as a
// plain user, with --json parsed and each exit code checked.
func TestCommandLineClient(t *testing.T) {
	const adminEmail, adminPassword = "cli-admin@example.org", "Cli-Admin-Passw0rd-2026"
	httpAddr := freeAddr(t)
	env := serveEnv(t.TempDir(), httpAddr, freeAddr(t), freeAddr(t))
	env["ADMIN_EMAIL"], env["ADMIN_PASSWORD"] = adminEmail, adminPassword
	base := "http://" + httpAddr
	p := start(t, "gnome", env, "serve")
	waitHealthy(t, base, p)

	admin := newCLIUser(t)

	t.Run("usage errors exit 2 and send nothing", func(t *testing.T) {
		admin.t = t
		for _, args := range [][]string{
			{"ls", "--bogus"}, {"status"}, {"status", "a", "b"}, {"frobnicate"}, {"tokens"}, {"users", "grant", "x@example.org"},
			{"export", "clicks-js"}, {"export", "clicks-js", "--type", "zip"}, {"login", "--url", "ftp://x", "--email", "a@b.c", "--password-stdin"},
		} {
			admin.want(2, nil, args...)
		}
		r := admin.want(2, nil, "export", "clicks-js", "--type", "zip", "--json")
		if e := decodeOut[cliError](t, r); e.Error.Code != "usage" || e.Error.ExitCode != 2 {
			t.Errorf("usage error as JSON = %+v", e)
		}
	})

	t.Run("without a sign-in every verb exits 3", func(t *testing.T) {
		admin.t = t
		for _, args := range [][]string{{"ls"}, {"status", "clicks-js"}, {"tokens", "ls"}, {"users", "ls"}, {"logout"}} {
			r := admin.want(3, nil, args...)
			if !strings.Contains(r.stderr, "gnome login") {
				t.Errorf("gnome %v says %q, want a hint to sign in", args, r.stderr)
			}
		}
		r := admin.want(3, nil, "ls", "--json")
		if e := decodeOut[cliError](t, r); e.Error.Code != "not_signed_in" || e.Error.ExitCode != 3 {
			t.Errorf("not signed in as JSON = %+v", e)
		}
		// A token that is no token is refused by the server: 3 as well.
		admin.want(3, []string{"GNOME_URL=" + base, "GNOME_TOKEN=gnome_pat_forged"}, "ls")
	})

	t.Run("a wrong password exits 3 and stores nothing", func(t *testing.T) {
		admin.t = t
		r := admin.run("not-the-password\n", nil, "login", "--url", base, "--email", adminEmail, "--password-stdin")
		if r.code != 3 || !strings.Contains(r.stderr, "invalid_credentials") {
			t.Errorf("wrong password: exit %d, stderr %q; want 3 and invalid_credentials", r.code, r.stderr)
		}
		if _, err := os.Stat(admin.settingsFile()); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("settings written after a refused sign-in: %v", err)
		}
	})

	admin.t = t
	admin.must(adminPassword+"\n", "login", "--url", base+"/", "--email", adminEmail, "--password-stdin")
	st, err := os.Stat(admin.settingsFile())
	if err != nil {
		t.Fatal(err)
	}
	if runtime.GOOS != "windows" && st.Mode().Perm() != 0o600 {
		t.Errorf("settings file mode = %v, want 0600", st.Mode().Perm())
	}
	raw, _ := os.ReadFile(admin.settingsFile())
	if strings.Contains(string(raw), adminPassword) || !strings.Contains(string(raw), `"token": "gnome_pat_`) || !strings.Contains(string(raw), `"url": "`+base+`"`) {
		t.Fatalf("settings file holds the password or lacks URL and token:\n%s", raw)
	}

	examples, err := filepath.Abs("../../../examples/clicks-js")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("push a folder with progress, then the same again", func(t *testing.T) {
		admin.t = t
		r := admin.must("", "push", examples)
		if !strings.Contains(r.stderr, "uploading") || !strings.Contains(r.stderr, "100%") {
			t.Errorf("push shows no upload progress on stderr:\n%s", r.stderr)
		}
		if !strings.Contains(r.stdout, "Pushed clicks-js (created): version 1") {
			t.Errorf("push says:\n%s", r.stdout)
		}
		type pushed struct {
			Experiment struct {
				Slug     string `json:"slug"`
				Version  int    `json:"version"`
				Checksum string `json:"checksum"`
			} `json:"experiment"`
			Created   bool `json:"created"`
			Unchanged bool `json:"unchanged"`
			Warnings  []struct {
				Field, Message string
			} `json:"warnings"`
		}
		again := decodeOut[pushed](t, admin.must("", "push", examples, "--json"))
		if again.Experiment.Slug != "clicks-js" || again.Created || !again.Unchanged || again.Experiment.Version != 1 ||
			len(again.Experiment.Checksum) != 64 || again.Warnings == nil {
			t.Errorf("second push = %+v, want clicks-js, not created, unchanged at version 1, a checksum and a warnings list", again)
		}
		// The same folder a third time: no version, and push says so.
		if r := admin.must("", "push", examples); !strings.Contains(r.stdout, "Pushed clicks-js (unchanged") || !strings.Contains(r.stdout, "version 1") {
			t.Errorf("an unchanged push says:\n%s", r.stdout)
		}
	})

	t.Run("push refusals name the code and the field", func(t *testing.T) {
		admin.t = t
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, "manifest.json"), []byte(`{"schema_version":"2.0","slug":"Bad Slug!","name":"x"}`), 0o644); err != nil {
			t.Fatal(err)
		}
		r := admin.want(1, nil, "push", dir)
		if !strings.Contains(r.stderr, "manifest_invalid") || !strings.Contains(r.stderr, "field: /slug") {
			t.Errorf("refusal reads:\n%s", r.stderr)
		}
		empty := t.TempDir()
		if r := admin.want(1, nil, "push", empty); !strings.Contains(r.stderr, "no manifest.json") {
			t.Errorf("a folder without a manifest: %s", r.stderr)
		}
	})

	t.Run("ls and status", func(t *testing.T) {
		admin.t = t
		r := admin.must("", "ls")
		if !strings.Contains(r.stdout, "SLUG") || !strings.Contains(r.stdout, "clicks-js") {
			t.Errorf("ls:\n%s", r.stdout)
		}
		type exp struct {
			Slug     string `json:"slug"`
			Name     string `json:"name"`
			Status   string `json:"status"`
			Version  int    `json:"version"`
			Checksum string `json:"checksum"`
			Actor    struct {
				State string `json:"state"`
			} `json:"actor"`
			Indexes []struct {
				Name, State string
			} `json:"indexes"`
		}
		list := decodeOut[struct{ Experiments []exp }](t, admin.must("", "ls", "--json"))
		if len(list.Experiments) != 1 || list.Experiments[0].Slug != "clicks-js" || list.Experiments[0].Version < 1 || list.Experiments[0].Actor.State == "" {
			t.Errorf("ls --json = %+v", list)
		}
		e := decodeOut[exp](t, admin.must("", "status", "clicks-js", "--json"))
		if e.Name != "Click tracker" || e.Status != "active" || len(e.Checksum) != 64 || len(e.Indexes) != 1 || e.Indexes[0].Name != "clicks_by_time" {
			t.Errorf("status --json = %+v", e)
		}
		r = admin.must("", "status", "clicks-js")
		for _, w := range []string{"checksum:", e.Checksum, "actor:", "clicks_by_time"} {
			if !strings.Contains(r.stdout, w) {
				t.Errorf("status lacks %q:\n%s", w, r.stdout)
			}
		}
		r = admin.want(1, nil, "status", "no-such-experiment")
		if !strings.Contains(r.stderr, "not_found") {
			t.Errorf("unknown slug: %s", r.stderr)
		}
		if e := decodeOut[cliError](t, admin.want(1, nil, "status", "no-such-experiment", "--json")); e.Error.Code != "not_found" || e.Error.Status != 404 {
			t.Errorf("unknown slug as JSON = %+v", e)
		}
	})

	t.Run("export waits with progress and verifies the download", func(t *testing.T) {
		admin.t = t
		out := filepath.Join(t.TempDir(), "clicks.zip")
		r := admin.must("", "export", "clicks-js", "--type", "standalone", "--wait", "-o", out, "--json")
		type exp struct {
			ID, Status, Checksum, File string
			Verified                   bool `json:"checksum_verified"`
		}
		got := decodeOut[exp](t, r)
		if got.Status != "ready" || !got.Verified || got.File != out {
			t.Fatalf("export --json = %+v", got)
		}
		if !strings.Contains(r.stderr, "building") || !strings.Contains(r.stderr, "downloading") {
			t.Errorf("export shows no progress:\n%s", r.stderr)
		}
		b, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(b)
		if hex.EncodeToString(sum[:]) != got.Checksum {
			t.Errorf("the saved file's sha256 is not the export's checksum %s", got.Checksum)
		}
		if _, err := zip.NewReader(bytes.NewReader(b), int64(len(b))); err != nil {
			t.Errorf("the package is no ZIP: %v", err)
		}
		// Asked again, the ready package is reused and said to be.
		r = admin.must("", "export", "clicks-js", "--type", "standalone")
		if !strings.Contains(r.stderr, "reused") || !strings.Contains(r.stdout, "Ready:") {
			t.Errorf("a second export:\nstderr: %s\nstdout: %s", r.stderr, r.stdout)
		}
	})

	t.Run("tokens: create, use from the environment, list, revoke", func(t *testing.T) {
		admin.t = t
		type tok struct {
			ID, Name, Token string
			Roles           []string
			LastUsedAt      *string `json:"last_used_at"`
		}
		created := decodeOut[tok](t, admin.must("", "tokens", "create", "ci", "--expires-in-days", "30", "--json"))
		if !strings.HasPrefix(created.Token, "gnome_pat_") || !slices.Contains(created.Roles, "admin") {
			t.Fatalf("tokens create = %+v", created)
		}
		ci := []string{"GNOME_URL=" + base, "GNOME_TOKEN=" + created.Token}
		if r := admin.run("", ci, "users", "ls", "--json"); r.code != 0 || !strings.Contains(r.stdout, adminEmail) {
			t.Errorf("users ls with GNOME_TOKEN: exit %d %s %s", r.code, r.stdout, r.stderr)
		}
		// A role the admin does not hold is refused, with the field named.
		if r := admin.want(1, nil, "tokens", "create", "odd", "--role", "no-such-role"); !strings.Contains(r.stderr, "field: /roles") {
			t.Errorf("a token with an unheld role: %s", r.stderr)
		}
		list := decodeOut[struct{ Tokens []tok }](t, admin.must("", "tokens", "ls", "--json"))
		var names []string
		for _, x := range list.Tokens {
			names = append(names, x.Name)
			if x.Token != "" {
				t.Errorf("tokens ls shows a secret: %+v", x)
			}
		}
		if len(list.Tokens) != 2 || !slices.Contains(names, "ci") || !slices.ContainsFunc(names, func(n string) bool { return strings.HasPrefix(n, "gnome CLI on ") }) {
			t.Errorf("tokens ls names = %v, want the login's and ci", names)
		}
		if r := admin.must("", "tokens", "ls"); !strings.Contains(r.stdout, "LAST USED") || !strings.Contains(r.stdout, created.ID) {
			t.Errorf("tokens ls:\n%s", r.stdout)
		}
		admin.must("", "tokens", "revoke", created.ID)
		// ls too: the experiment list is open to anonymous visitors, and a
		// dead token must not pass for one.
		waitFor(t, 10*time.Second, "the revoked token to be refused", func() bool {
			return admin.run("", ci, "tokens", "ls").code == 3 && admin.run("", ci, "ls").code == 3
		})
	})

	plain := newCLIUser(t)
	const plainEmail, plainPassword = "plain-user@example.org", "Plain-User-Passw0rd-2026"
	t.Run("users as admin", func(t *testing.T) {
		admin.t = t
		type usr struct {
			Email    string
			Roles    []string
			Disabled bool
		}
		u := decodeOut[usr](t, admin.must(plainPassword+"\n", "users", "create", plainEmail, "--password-stdin", "--json"))
		if u.Email != plainEmail || !slices.Equal(u.Roles, []string{"user"}) {
			t.Errorf("users create = %+v", u)
		}
		admin.must("Other-Passw0rd-2026\n", "users", "create", "dev@example.org", "--role", "developer", "--password-stdin")
		if u := decodeOut[usr](t, admin.must("", "users", "grant", "dev@example.org", "admin", "--json")); !slices.Contains(u.Roles, "admin") {
			t.Errorf("grant: %+v", u)
		}
		if u := decodeOut[usr](t, admin.must("", "users", "revoke", "dev@example.org", "admin", "--json")); slices.Contains(u.Roles, "admin") {
			t.Errorf("revoke: %+v", u)
		}
		if r := admin.must("", "users", "disable", "dev@example.org"); !strings.Contains(r.stdout, "disabled") {
			t.Errorf("disable: %s", r.stdout)
		}
		list := decodeOut[struct{ Users []usr }](t, admin.must("", "users", "ls", "--json"))
		found := false
		for _, x := range list.Users {
			if x.Email == "dev@example.org" {
				found = x.Disabled && slices.Equal(x.Roles, []string{"developer"})
			}
		}
		if len(list.Users) != 3 || !found {
			t.Errorf("users ls = %+v", list.Users)
		}
		admin.want(1, nil, "users", "grant", "nobody@example.org", "developer")
	})

	t.Run("a plain user is refused the admin verbs and push", func(t *testing.T) {
		plain.t = t
		plain.must(plainPassword+"\n", "login", "--url", base, "--email", plainEmail, "--password-stdin")
		for _, args := range [][]string{{"users", "ls"}, {"users", "disable", adminEmail}, {"push", examples}} {
			if r := plain.want(3, nil, args...); !strings.Contains(r.stderr, "forbidden") {
				t.Errorf("plain user, gnome %v: %s", args, r.stderr)
			}
		}
		// Active experiments are theirs to see.
		if r := plain.must("", "ls"); !strings.Contains(r.stdout, "clicks-js") {
			t.Errorf("plain user's ls:\n%s", r.stdout)
		}
	})

	t.Run("logout revokes the token and deletes the settings", func(t *testing.T) {
		admin.t = t
		var s struct{ Token string }
		raw, _ := os.ReadFile(admin.settingsFile())
		_ = json.Unmarshal(raw, &s)
		admin.must("", "logout")
		if _, err := os.Stat(admin.settingsFile()); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("settings still there after logout: %v", err)
		}
		admin.want(3, nil, "ls")
		waitFor(t, 10*time.Second, "the logged-out token to be refused", func() bool {
			if admin.run("", []string{"GNOME_URL=" + base, "GNOME_TOKEN=" + s.Token}, "tokens", "ls").code != 3 {
				return false
			}
			return admin.run("", []string{"GNOME_URL=" + base, "GNOME_TOKEN=" + s.Token}, "ls").code == 3
		})
	})
}
