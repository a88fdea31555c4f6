package e2e

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/httpx"
	"github.com/gnome-platform/gnome/libs/testenv"
)

// When the actor-worker process running an actor is killed (SIGKILL: no
// goodbye, its lease simply stops being renewed), its lease expires and the
// other actor-worker process starts the actor; the experiment serves again
// with its data. Every service runs as its own process. The target
// is 5 s from the kill to serving again; the test allows 10 s and reports
// the time measured.
func TestActorFailsOverWhenItsWorkerIsKilled(t *testing.T) {
	wasm := buildExample(t, "clicks")
	c := startCluster(t, "failover-admin@example.com", "a-failover-admin-passphrase", nil)
	c.start("auth", nil)
	c.start("upload", nil)
	workers := []*proc{c.start("actorworker", nil), c.start("actorworker", nil)}
	c.startEdge()
	admin := c.admin()
	zipBytes := exampleZip(t, "clicks", wasm)
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	fw, _ := mw.CreateFormFile("file", "clicks.zip")
	_, _ = fw.Write(zipBytes)
	_ = mw.Close()
	if r := admin.send("POST", "/api/experiments", mw.FormDataContentType(), form.String()); r.status != 201 {
		t.Fatalf("upload clicks: %d %s", r.status, r.body)
	}
	var holder string
	waitFor(t, 60*time.Second, "the clicks actor to run", func() bool {
		st := admin.health("clicks")
		holder = st.Worker
		return st.State == "running"
	})
	for range 3 {
		if r := admin.send("POST", "/experiments/clicks/api/click", "application/json", `{"button":"red"}`); r.status != 201 {
			t.Fatalf("click: %d %s", r.status, r.body)
		}
	}

	// The instance ID is host-pid-random: find the holder's process.
	var victim, survivor *proc
	for i, w := range workers {
		if strings.Contains(holder, "-"+strconv.Itoa(w.cmd.Process.Pid)+"-") {
			victim, survivor = w, workers[1-i]
		}
	}
	if victim == nil {
		t.Fatalf("the holder %q is none of the worker processes", holder)
	}

	// Requests go out every 25 ms from the kill on, each on its own (a
	// request that reached the dying process is lost and only times out);
	// serving again is when the first request that succeeds was sent.
	var (
		mu      sync.Mutex
		firstOK time.Time
		wg      sync.WaitGroup
	)
	killed := time.Now()
	if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	stop := time.After(20 * time.Second)
poll:
	for {
		select {
		case <-stop:
			break poll
		case <-time.After(25 * time.Millisecond):
		}
		sent := time.Now()
		wg.Add(1)
		go func() {
			defer wg.Done()
			if admin.send("GET", "/experiments/clicks/api/counts", "", "").status != 200 {
				return
			}
			mu.Lock()
			if firstOK.IsZero() || sent.Before(firstOK) {
				firstOK = sent
			}
			mu.Unlock()
		}()
		mu.Lock()
		done := !firstOK.IsZero()
		mu.Unlock()
		if done {
			break
		}
	}
	wg.Wait()
	if firstOK.IsZero() {
		t.Fatalf("the actor did not serve again within 20 s of the kill")
	}
	took := firstOK.Sub(killed)
	t.Logf("failover: serving again %v after SIGKILL of the worker holding the actor", took.Round(time.Millisecond))
	// The 5 s target is measured by make bench (failover); a test on a
	// shared machine only bounds the wait.
	st := admin.health("clicks")
	if st.State != "running" || !strings.Contains(st.Worker, "-"+strconv.Itoa(survivor.cmd.Process.Pid)+"-") {
		t.Errorf("after the failover: %+v, want running on pid %d", st, survivor.cmd.Process.Pid)
	}
	var counts struct {
		Total int `json:"total"`
	}
	if r := admin.send("GET", "/experiments/clicks/api/counts", "", ""); json.Unmarshal([]byte(r.body), &counts) != nil || counts.Total != 3 {
		t.Errorf("the clicks after the failover: %s", r.body)
	}
}

// buildExample builds examples/<name>/actor for the sandbox.
func buildExample(t *testing.T, name string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), name+".wasm")
	cmd := exec.Command("go", "build", "-buildmode=c-shared", "-o", out, "./examples/"+name+"/actor")
	cmd.Dir = "../../.."
	cmd.Env = append(os.Environ(), "GOOS=wasip1", "GOARCH=wasm")
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build the %s example: %v\n%s", name, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// exampleZip packs examples/<name> (its manifest and page) with the actor.
func exampleZip(t *testing.T, name string, wasm []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := zip.NewWriter(&buf)
	add := func(n string, data []byte) {
		w, err := zw.Create(n)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write(data)
	}
	for _, f := range []string{"manifest.json", "static/index.html"} {
		b, err := os.ReadFile(filepath.Join("../../../examples", name, f))
		if err != nil {
			t.Fatal(err)
		}
		add(f, b)
	}
	add("actor.wasm", wasm)
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// session is a signed-in HTTP client of one edge.
type session struct {
	t    *testing.T
	base string
	http *http.Client
}

func newSession(t *testing.T, base string) *session {
	jar, _ := cookiejar.New(nil)
	return &session{t: t, base: base, http: &http.Client{Jar: jar, Timeout: 10 * time.Second, Transport: testenv.LocalhostTransport()}}
}

type answer struct {
	status int
	body   string
}

// An experiment's paths go to its own origin, where a script presents its
// platform token as a Bearer header (the cookie stays on the platform).
func (s *session) send(method, path, contentType, body string) answer {
	target := s.base + path
	if rest, ok := strings.CutPrefix(path, "/experiments/"); ok {
		if slug, _, _ := strings.Cut(rest, "/"); httpx.SlugPattern.MatchString(slug) {
			target = testenv.ExperimentURL(strings.TrimPrefix(s.base, "http://"), slug, path)
		}
	}
	req, err := http.NewRequest(method, target, strings.NewReader(body))
	if err != nil {
		s.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	// Bearer auth keeps state-changing calls clear of the CSRF check.
	u, _ := url.Parse(s.base)
	for _, c := range s.http.Jar.Cookies(u) {
		if c.Name == "token" {
			req.Header.Set("Authorization", "Bearer "+c.Value)
		}
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return answer{}
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return answer{resp.StatusCode, string(b)}
}

type actorHealth struct {
	State  string `json:"state"`
	Worker string `json:"worker"`
}

func (s *session) health(slug string) actorHealth {
	var h actorHealth
	_ = json.Unmarshal([]byte(s.send("GET", "/experiments/"+slug+"/health", "", "").body), &h)
	return h
}
