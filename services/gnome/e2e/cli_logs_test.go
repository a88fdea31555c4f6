package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// gnome logs against one gnome serve: the actor's start line listed, the
// refusals' exit codes, and -f printing a new version's start line as it
// comes and ending cleanly on Ctrl-C.
func TestCommandLineLogs(t *testing.T) {
	const adminEmail, adminPassword = "cli-logs@example.org", "Cli-Logs-Passw0rd-2026"
	httpAddr := freeAddr(t)
	env := serveEnv(t.TempDir(), httpAddr, freeAddr(t), freeAddr(t))
	env["ADMIN_EMAIL"], env["ADMIN_PASSWORD"] = adminEmail, adminPassword
	base := "http://" + httpAddr
	p := start(t, "gnome", env, "serve")
	waitHealthy(t, base, p)

	admin := newCLIUser(t)
	admin.must(adminPassword+"\n", "login", "--url", base, "--email", adminEmail, "--password-stdin")
	src, err := filepath.Abs("../../../examples/clicks-js")
	if err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(t.TempDir(), "clicks-js")
	copyDir(t, src, work)
	admin.must("", "push", work)
	// A call brings the actor up; its start writes "clicks started".
	waitFor(t, 2*time.Minute, "the actor to answer", func() bool {
		status, _, err := tryPostActor(httpAddr, "clicks-js", "/click", `{"button":"a"}`)
		return err == nil && status < 500
	})

	type listed struct {
		Slug  string `json:"slug"`
		Lines []struct {
			Message string `json:"message"`
			Level   string `json:"level"`
			Stream  string `json:"stream"`
			Version int    `json:"version"`
		} `json:"lines"`
	}
	waitFor(t, 30*time.Second, "the start line to be listed", func() bool {
		l := decodeOut[listed](t, admin.must("", "logs", "clicks-js", "--json"))
		return slices.ContainsFunc(l.Lines, func(x struct {
			Message string `json:"message"`
			Level   string `json:"level"`
			Stream  string `json:"stream"`
			Version int    `json:"version"`
		}) bool {
			return strings.Contains(x.Message, "clicks started") && x.Level == "info" && x.Stream == "log" && x.Version == 1
		})
	})
	if r := admin.must("", "logs", "clicks-js", "--since", "10m"); !strings.Contains(r.stdout, "INFO") || !strings.Contains(r.stdout, "clicks started") {
		t.Errorf("gnome logs: %s", r.stdout)
	}
	admin.want(2, nil, "logs", "clicks-js", "--limit", "0")
	admin.want(2, nil, "logs")
	admin.want(1, nil, "logs", "no-such-experiment")
	if r := admin.want(1, nil, "logs", "clicks-js", "--since", "yesterday", "--json"); !strings.Contains(r.stdout, "validation_failed") {
		t.Errorf("a bad --since: %s", r.stdout)
	}

	// Following: a second version's start line arrives while it runs.
	f := exec.Command(filepath.Join(bins, "gnome"), "logs", "clicks-js", "-f", "--json", "--since", "1m")
	f.Env = admin.env
	out := &proc{name: "gnome logs -f", done: make(chan struct{})}
	f.Stdout, f.Stderr = out, out
	if err := f.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { out.err = f.Wait(); close(out.done) }()
	t.Cleanup(func() {
		select {
		case <-out.done:
		default:
			_ = f.Process.Kill()
			<-out.done
		}
	})
	waitFor(t, 30*time.Second, "the backlog to be printed", func() bool { return strings.Contains(out.Output(), "clicks started") })
	raw, _ := os.ReadFile(filepath.Join(work, "manifest.json"))
	edited := strings.Replace(string(raw), `"name": "Click tracker"`, `"name": "Click tracker, logged"`, 1)
	if err := os.WriteFile(filepath.Join(work, "manifest.json"), []byte(edited), 0o644); err != nil {
		t.Fatal(err)
	}
	admin.must("", "push", work)
	waitFor(t, 2*time.Minute, "version 2's start line to be followed", func() bool {
		_, _, _ = tryPostActor(httpAddr, "clicks-js", "/click", `{"button":"a"}`)
		for _, line := range strings.Split(out.Output(), "\n") {
			var l struct {
				Message string `json:"message"`
				Version int    `json:"version"`
			}
			if json.Unmarshal([]byte(line), &l) == nil && l.Version == 2 && strings.Contains(l.Message, "clicks started") {
				return true
			}
		}
		return false
	})
	_ = f.Process.Signal(syscall.SIGINT)
	select {
	case <-out.done:
	case <-time.After(10 * time.Second):
		t.Fatalf("gnome logs -f still running 10 s after Ctrl-C:\n%s", out.Output())
	}
	if out.err != nil {
		t.Fatalf("gnome logs -f ended with %v:\n%s", out.err, out.Output())
	}
}
