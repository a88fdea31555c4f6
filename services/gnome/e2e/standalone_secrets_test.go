package e2e

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// secretsGuestZip is an active experiment whose actor is
// services/actorworker/testdata/secrets: GET /secret/{name} answers the
// secret's value.
func secretsGuestZip(t *testing.T, slug string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), "secrets.wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, "./services/actorworker/testdata/secrets")
	cmd.Dir = "../../.."
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the secrets guest: %v\n%s", err, b)
	}
	wasm, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	for name, data := range map[string][]byte{
		"manifest.json": []byte(`{"slug":"` + slug + `","name":"Keys","status":"active","actor":{"module":"actor.wasm"}}`),
		"index.html":    []byte("<p>keys</p>"),
		"actor.wasm":    wasm,
	} {
		w, err := zw.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write(data)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// A secret travels by name only: the platform's standalone package holds
// no value, `gnome standalone` names the secret to set in its banner, the
// actor there finds it unset until the admin sets it on the standalone
// run. Neither process prints the value.
func TestStandaloneNamesSecretsToSet(t *testing.T) {
	const slug, value = "keys", "sk-standalone-Q1w2E3r4T5"
	httpAddr, natsAddr, storeAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	env := serveEnv(t.TempDir(), httpAddr, natsAddr, storeAddr)
	env["ADMIN_EMAIL"], env["ADMIN_PASSWORD"], env["SECRET_KEY"], env["LOG_LEVEL"] = saAdminEmail, saAdminPassword, saSecret, "DEBUG"
	base := "http://" + httpAddr
	p := start(t, "gnome", env, "serve")
	waitHealthy(t, base, p)
	admin := signIn(t, base)
	if r := admin.send("POST", "/api/experiments", "application/zip", string(secretsGuestZip(t, slug))); r.status != http.StatusCreated {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	waitFor(t, 30*time.Second, "the actor to run", func() bool { return admin.health(slug).State == "running" })
	if r := admin.send("PUT", "/api/experiments/"+slug+"/secrets/API_KEY", "application/json", `{"value":"`+value+`"}`); r.status != http.StatusCreated {
		t.Fatalf("set the secret: %d %s", r.status, r.body)
	}
	if r := admin.send("GET", "/experiments/"+slug+"/api/secret/API_KEY", "", ""); r.status != http.StatusOK || !strings.Contains(r.body, value) {
		t.Fatalf("the actor reads the secret: %d %s", r.status, r.body)
	}
	pkg := filepath.Join(t.TempDir(), "keys-standalone.zip")
	exportOverHTTP(t, admin, slug, pkg)
	p.stop(t)
	if strings.Contains(p.Output(), value) {
		t.Errorf("gnome serve printed the secret's value")
	}
	if !strings.Contains(p.Output(), "secret set") {
		t.Errorf("gnome serve's output lacks the secrets' traffic; the check above proves nothing")
	}
	raw, err := os.ReadFile(pkg)
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(raw), int64(len(raw)))
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range zr.File {
		rc, _ := f.Open()
		var b bytes.Buffer
		_, _ = b.ReadFrom(rc)
		rc.Close()
		if strings.Contains(b.String(), value) {
			t.Errorf("package entry %s holds the value", f.Name)
		}
	}

	saAddr := freeAddr(t)
	sp := start(t, "gnome", map[string]string{
		"EMBEDDED_STORE_ADDR": freeAddr(t), "LOG_LEVEL": "DEBUG",
		"ADMIN_EMAIL": saAdminEmail, "ADMIN_PASSWORD": saAdminPassword, "SECRET_KEY": saSecret,
	}, "standalone", pkg, "--data-dir", t.TempDir(), "--addr", saAddr)
	saBase := "http://" + saAddr
	waitHealthy(t, saBase, sp)
	waitFor(t, 10*time.Second, "the banner to name the secret to set", func() bool {
		return strings.Contains(sp.Output(), "secrets     the actor reads secrets this package cannot hold: API_KEY") &&
			strings.Contains(sp.Output(), "PUT /api/experiments/keys/secrets/<name>")
	})
	sa := signIn(t, saBase)
	waitFor(t, 30*time.Second, "the actor to run", func() bool { return sa.health(slug).State == "running" })
	if r := sa.send("GET", "/experiments/"+slug+"/api/secret/API_KEY", "", ""); r.status != http.StatusNotFound {
		t.Fatalf("the standalone actor before the secret is set: %d %s", r.status, r.body)
	}
	const local = "sk-standalone-local-value"
	if r := sa.send("PUT", "/api/experiments/"+slug+"/secrets/API_KEY", "application/json", `{"value":"`+local+`"}`); r.status != http.StatusCreated {
		t.Fatalf("set the secret on the standalone run: %d %s", r.status, r.body)
	}
	r := sa.send("GET", "/experiments/"+slug+"/api/secret/API_KEY", "", "")
	var got struct {
		Value string `json:"value"`
	}
	if r.status != http.StatusOK || json.Unmarshal([]byte(r.body), &got) != nil || got.Value != local {
		t.Fatalf("the standalone actor after the secret is set: %d %s", r.status, r.body)
	}
	sp.stop(t)
	for _, v := range []string{value, local} {
		if strings.Contains(sp.Output(), v) {
			t.Errorf("gnome standalone printed a secret's value")
		}
	}
}
