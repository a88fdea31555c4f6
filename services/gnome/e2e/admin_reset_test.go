package e2e

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// gnome admin reset-password, run as an operator runs it on the server's
// machine with the server's settings: while gnome serve runs (the admin's
// old session ends, the old password stops working, the printed one signs
// in), then while it is stopped (a password from stdin, which the restarted
// server accepts); refusals exit as docs/cli.md says.
func TestAdminResetPassword(t *testing.T) {
	const adminEmail, oldPassword = "reset-admin@example.org", "Old-Admin-Passw0rd-2026"
	dataDir := t.TempDir()
	httpAddr := freeAddr(t)
	env := serveEnv(dataDir, httpAddr, freeAddr(t), freeAddr(t))
	env["ADMIN_EMAIL"], env["ADMIN_PASSWORD"] = adminEmail, oldPassword
	base := "http://" + httpAddr
	p := start(t, "gnome", env, "serve")
	waitHealthy(t, base, p)

	var settings []string
	for _, k := range []string{"DATA_DIR", "EMBEDDED_NATS_ADDR", "EMBEDDED_STORE_ADDR", "ADMIN_EMAIL"} {
		settings = append(settings, k+"="+env[k])
	}
	op := newCLIUser(t)
	run := func(stdin string, args ...string) cliRun {
		return op.run(stdin, settings, append([]string{"admin"}, args...)...)
	}
	// Five sign-ins in all: the sign-in limit of one client.
	login := func(password string) (*session, int) {
		s := newSession(t, base)
		body, _ := json.Marshal(map[string]string{"email": adminEmail, "password": password})
		return s, s.send("POST", "/auth/login", "application/json", string(body)).status
	}
	old, status := login(oldPassword)
	if status != 200 {
		t.Fatalf("sign in with the first password: %d", status)
	}

	// While the server runs: a new password, printed once, alone on stdout.
	r := run("", "reset-password")
	if r.code != 0 {
		t.Fatalf("reset-password while serving: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	printed := strings.TrimSpace(r.stdout)
	if len(printed) < 16 || strings.ContainsAny(printed, " \n") || !strings.Contains(r.stderr, adminEmail) || !strings.Contains(r.stderr, "running server") {
		t.Fatalf("reset-password printed stdout %q, stderr %q", r.stdout, r.stderr)
	}
	waitFor(t, 30*time.Second, "the admin's old session to end", func() bool { return old.send("GET", "/api/me", "", "").status == 401 })
	if _, status := login(oldPassword); status != 401 {
		t.Errorf("the old password after the reset: %d, want 401", status)
	}
	if _, status := login(printed); status != 200 {
		t.Errorf("the printed password: %d, want 200", status)
	}

	// Refusals.
	for _, c := range []struct {
		stdin string
		args  []string
		code  int
		says  string
	}{
		{"", nil, 2, "needs a subcommand"},
		{"", []string{"frobnicate"}, 2, "unknown command"},
		{"", []string{"reset-password", "extra"}, 2, ""},
		{"", []string{"reset-password", "--bogus"}, 2, ""},
		{"", []string{"reset-password", "--stdin"}, 2, "stdin holds no password"},
		{"password\n", []string{"reset-password", "--stdin"}, 1, "refused"},
		{"", []string{"reset-password", "--email", "nobody@example.org"}, 1, "no account nobody@example.org"},
	} {
		r := run(c.stdin, c.args...)
		if r.code != c.code || !strings.Contains(r.stderr, c.says) {
			t.Errorf("gnome admin %v: exit %d %q, want %d saying %q", c.args, r.code, r.stderr, c.code, c.says)
		}
		if c.code != 0 && r.stdout != "" {
			t.Errorf("gnome admin %v printed %q on stdout while failing", c.args, r.stdout)
		}
	}

	// While the server is stopped: the password from stdin.
	p.stop(t)
	const chosen = "a chosen passphrase for 2026"
	r = run(chosen+"\n", "reset-password", "--stdin")
	if r.code != 0 || r.stdout != "" || !strings.Contains(r.stderr, "stopped") {
		t.Fatalf("reset-password while stopped: exit %d stdout %q stderr %q", r.code, r.stdout, r.stderr)
	}
	p = start(t, "gnome", env, "serve")
	waitHealthy(t, base, p)
	if _, status := login(printed); status != 401 {
		t.Errorf("the printed password after the second reset: %d, want 401", status)
	}
	if _, status := login(chosen); status != 200 {
		t.Errorf("the password set while stopped: %d, want 200", status)
	}
	p.stop(t)

	// A DATA_DIR with no platform in it is named, and nothing is made there.
	empty := filepath.Join(t.TempDir(), "none")
	r = op.run("", []string{"DATA_DIR=" + empty}, "admin", "reset-password")
	if r.code != 1 || !strings.Contains(r.stderr, "no platform data under DATA_DIR") {
		t.Errorf("an empty DATA_DIR: exit %d %q", r.code, r.stderr)
	}
}
