package apitest

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gnome-platform/gnome/libs/store"
)

// versionZip is experiment slug at one version: its page says which, and
// its actor (the probe) has the version's tag in its config.
func versionZip(t *testing.T, slug, tag string) []byte {
	t.Helper()
	m := manifest(slug, map[string]any{"name": "Roll " + tag, "description": "version " + tag,
		"actor": map[string]any{"module": "actor.wasm", "config": map[string]any{"tag": tag}}})
	return zipOf(t, map[string]string{"manifest.json": m, "index.html": "<h1>version " + tag + "</h1>",
		"static/app.js": "console.log('" + tag + "')", "actor.wasm": string(probeWasm(t))})
}

type versionsList struct {
	Slug     string `json:"slug"`
	Current  int    `json:"current"`
	Keep     int    `json:"keep"`
	Versions []struct {
		Version     int       `json:"version"`
		Checksum    string    `json:"checksum"`
		Size        int64     `json:"size"`
		UploadedAt  time.Time `json:"uploaded_at"`
		UploadedBy  string    `json:"uploaded_by"`
		Current     bool      `json:"current"`
		Available   bool      `json:"available"`
		Name        string    `json:"name"`
		Description string    `json:"description"`
	} `json:"versions"`
}

func (c *client) versions(slug string) versionsList {
	c.t.Helper()
	r := c.do("GET", "/api/experiments/"+slug+"/versions", nil, nil)
	var l versionsList
	if r.status != 200 || json.Unmarshal(r.body, &l) != nil {
		c.t.Fatalf("versions of %s: %d %s", slug, r.status, r.body)
	}
	return l
}

// Upload two versions of an experiment with an actor, list them, roll back
// to the first: both edges serve its files again and the actor runs its
// module and config again; the list shows it current. Hostile requests
// change nothing.
func TestVersionsAndRollbackThroughThePlatform(t *testing.T) {
	p := startPlatform(t, 2, nil)
	admin := p.client(t, 0)
	admin.login(adminEmail, adminPassword)
	for _, u := range []map[string]any{
		{"email": "dev@example.com", "password": "developer-passphrase", "roles": []string{"developer"}},
		{"email": "dev2@example.com", "password": "developer-passphrase", "roles": []string{"developer"}},
		{"email": "user@example.com", "password": "plain-user-passphrase"},
	} {
		if r := admin.do("POST", "/admin/api/users", u, nil); r.status != 201 {
			t.Fatalf("create %v: %d %s", u["email"], r.status, r.body)
		}
	}
	dev := p.client(t, 0)
	dev.login("dev@example.com", "developer-passphrase")
	dev2 := p.client(t, 1)
	dev2.login("dev2@example.com", "developer-passphrase")
	user := p.client(t, 0)
	user.login("user@example.com", "plain-user-passphrase")
	anon := p.client(t, 1)
	anonOther := p.client(t, 0)

	config := func(c *client) string { return string(c.do("GET", "/experiments/roll/api/config", nil, nil).body) }
	if r := dev.upload(versionZip(t, "roll", "one")); r.status != 201 {
		t.Fatalf("upload one: %d %s", r.status, r.body)
	}
	anon.running("roll")
	if got := config(anon); !strings.Contains(got, `"tag":"one"`) {
		t.Fatalf("version one's actor config: %s", got)
	}
	if r := dev.upload(versionZip(t, "roll", "two")); r.status != 201 || !strings.Contains(string(r.body), `"version":2`) {
		t.Fatalf("upload two: %d %s", r.status, r.body)
	}
	eventually(t, time.Second, "both edges to serve version two and its actor", func() bool {
		return string(anon.do("GET", "/experiments/roll/", nil, nil).body) == "<h1>version two</h1>" &&
			string(anonOther.do("GET", "/experiments/roll/", nil, nil).body) == "<h1>version two</h1>" &&
			strings.Contains(config(anon), `"tag":"two"`)
	})
	// dev2's own experiment has versions 1 to 3.
	for _, tag := range []string{"a", "b", "c"} {
		if r := dev2.upload(experimentZip(t, "theirs", "<p>"+tag+"</p>", nil)); r.status != 201 {
			t.Fatalf("dev2's upload %s: %d %s", tag, r.status, r.body)
		}
	}

	l := dev.versions("roll")
	if l.Slug != "roll" || l.Current != 2 || l.Keep != 5 || len(l.Versions) != 2 {
		t.Fatalf("versions: %+v", l)
	}
	if v := l.Versions[0]; v.Version != 2 || !v.Current || !v.Available || v.Name != "Roll two" || v.Description != "version two" ||
		v.UploadedBy != "dev@example.com" || v.Size <= 0 || len(v.Checksum) != 64 || time.Since(v.UploadedAt) > time.Hour {
		t.Errorf("newest version: %+v", v)
	}
	if v := l.Versions[1]; v.Version != 1 || v.Current || !v.Available || v.Name != "Roll one" {
		t.Errorf("first version: %+v", v)
	}
	if l2 := admin.versions("roll"); l2.Current != 2 || len(l2.Versions) != 2 {
		t.Errorf("the admin's list: %+v", l2)
	}

	// Hostile and mistaken requests: each refused in the contract's shape,
	// none changes anything.
	rollback := func(c *client, slug string, body any, hdr map[string]string) response {
		return c.do("POST", "/api/experiments/"+slug+"/rollback", body, hdr)
	}
	for _, c := range []struct {
		name   string
		who    *client
		slug   string
		body   any
		hdr    map[string]string
		status int
		code   string
	}{
		{"version 0", dev, "roll", map[string]any{"version": 0}, nil, 422, "validation_failed"},
		{"a negative version", dev, "roll", map[string]any{"version": -1}, nil, 422, "validation_failed"},
		{"a huge version", dev, "roll", map[string]any{"version": 1 << 40}, nil, 404, "not_found"},
		{"a version beyond any integer", dev, "roll", `{"version":1e400}`, map[string]string{"Content-Type": "application/json"}, 422, "validation_failed"},
		{"a string", dev, "roll", map[string]any{"version": "1"}, nil, 422, "validation_failed"},
		{"no version", dev, "roll", map[string]any{}, nil, 422, "validation_failed"},
		{"another experiment's version", dev, "roll", map[string]any{"version": 3}, nil, 404, "not_found"},
		{"another developer", dev2, "roll", map[string]any{"version": 1}, nil, 403, "forbidden"},
		{"a user", user, "roll", map[string]any{"version": 1}, nil, 403, "forbidden"},
		{"anonymous", anon, "roll", map[string]any{"version": 1}, nil, 401, "unauthenticated"},
		{"someone else's experiment", dev, "theirs", map[string]any{"version": 1}, nil, 403, "forbidden"},
		{"an unknown experiment", dev, "nowhere", map[string]any{"version": 1}, nil, 404, "not_found"},
		{"by cookie from another site", dev, "roll", map[string]any{"version": 1}, map[string]string{"Sec-Fetch-Site": "cross-site"}, 403, "csrf_rejected"},
		{"by cookie from the experiment's origin", dev, "roll", map[string]any{"version": 1},
			map[string]string{"Sec-Fetch-Site": "same-site", "Origin": dev.experimentURL("roll", "")}, 403, "csrf_rejected"},
	} {
		if r := rollback(c.who, c.slug, c.body, c.hdr); r.status != c.status || r.errorCode() != c.code {
			t.Errorf("%s: %d %s, want %d %s", c.name, r.status, r.body, c.status, c.code)
		}
	}
	for _, c := range []struct {
		name   string
		who    *client
		status int
	}{{"another developer", dev2, 403}, {"a user", user, 403}, {"anonymous", anon, 401}} {
		if r := c.who.do("GET", "/api/experiments/roll/versions", nil, nil); r.status != c.status {
			t.Errorf("versions, %s: %d %s, want %d", c.name, r.status, r.body, c.status)
		}
	}
	if l := dev.versions("roll"); l.Current != 2 {
		t.Fatalf("the refusals changed the current version: %+v", l)
	}

	// The rollback.
	r := rollback(dev, "roll", map[string]any{"version": 1}, nil)
	var res struct {
		Experiment struct {
			Version int    `json:"version"`
			Name    string `json:"name"`
		} `json:"experiment"`
		From    int  `json:"from"`
		Changed bool `json:"changed"`
	}
	if r.status != 200 || json.Unmarshal(r.body, &res) != nil || !res.Changed || res.From != 2 || res.Experiment.Version != 1 || res.Experiment.Name != "Roll one" {
		t.Fatalf("rollback: %d %s", r.status, r.body)
	}
	took := eventually(t, time.Second, "both edges to serve version one and its actor again", func() bool {
		return string(anon.do("GET", "/experiments/roll/", nil, nil).body) == "<h1>version one</h1>" &&
			string(anonOther.do("GET", "/experiments/roll/", nil, nil).body) == "<h1>version one</h1>" &&
			string(anon.do("GET", "/experiments/roll/static/app.js", nil, nil).body) == "console.log('one')" &&
			strings.Contains(config(anon), `"tag":"one"`)
	})
	t.Logf("rollback served after %v", took)
	eventually(t, 30*time.Second, "the actor to report version one", func() bool { return anon.health("roll").Version == 1 })
	l = dev.versions("roll")
	if l.Current != 1 || len(l.Versions) != 2 || l.Versions[0].Version != 2 || l.Versions[0].Current || !l.Versions[1].Current {
		t.Fatalf("versions after the rollback: %+v", l)
	}
	if r := dev.do("GET", "/api/experiments/roll", nil, nil); !strings.Contains(string(r.body), `"version":1,`) {
		t.Errorf("the experiment after the rollback: %s", r.body)
	}

	// Again: already current, a success that changes nothing.
	if r := rollback(admin, "roll", map[string]any{"version": 1}, nil); r.status != 200 || !strings.Contains(string(r.body), `"changed":false`) {
		t.Fatalf("rollback to the current version: %d %s", r.status, r.body)
	}
	n, err := p.deps.Store.Collection(store.AuditLog).CountDocuments(context.Background(),
		bson.D{{Key: "what", Value: "experiment.rollback"}, {Key: "target", Value: "roll"}, {Key: "who", Value: "dev@example.com"}})
	if err != nil || n != 1 {
		t.Fatalf("rollback audit entries: %d %v, want 1", n, err)
	}

	// The next upload is version 3.
	if r := dev.upload(versionZip(t, "roll", "three")); r.status != 201 || !strings.Contains(string(r.body), `"version":3`) {
		t.Fatalf("upload after the rollback: %d %s", r.status, r.body)
	}
	eventually(t, time.Second, "version three to be served", func() bool {
		return string(anon.do("GET", "/experiments/roll/", nil, nil).body) == "<h1>version three</h1>"
	})
}
