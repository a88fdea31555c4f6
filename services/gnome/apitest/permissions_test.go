package apitest

import (
	"strings"
	"testing"
	"time"
)

// An experiment whose manifest asks for a custom permission (auth_policy
// custom_actions, here on the default resource experiment:{slug}): its
// owner grants it to a user through one edge, and the user gets in on
// another, which learns of the change through the real bus and the policy
// watcher; the owner revokes it, and the user is refused again. An owner
// naming the platform's own resource cannot grant it to themselves.
func TestCustomPermissionThroughThePlatform(t *testing.T) {
	p := startPlatform(t, 2, nil)
	admin := p.client(t, 0)
	admin.login(adminEmail, adminPassword)
	for email, roles := range map[string][]string{"dev@example.com": {"developer"}, "ann@example.com": {"user"}} {
		if r := admin.do("POST", "/admin/api/users", map[string]any{"email": email, "password": "a passphrase for " + email, "roles": roles}, nil); r.status != 201 {
			t.Fatalf("create %s: %d %s", email, r.status, r.body)
		}
	}
	dev := p.client(t, 0)
	dev.login("dev@example.com", "a passphrase for dev@example.com")
	policy := map[string]any{"auth_policy": map[string]any{"custom_actions": []string{"access", "export"}}}
	if r := dev.upload(experimentZip(t, "vault", "<p>the vault</p>", policy)); r.status != 201 {
		t.Fatalf("upload: %d %s", r.status, r.body)
	}
	bearer := map[string]string{"Authorization": "Bearer " + dev.token()}

	// ann, on the other edge: signed in, without the permission.
	ann := p.client(t, 1)
	ann.login("ann@example.com", "a passphrase for ann@example.com")
	if r := ann.do("GET", "/experiments/vault/health", nil, nil); r.status != 403 || r.errorCode() != "forbidden" {
		t.Fatalf("ann before the grant: %d %s", r.status, r.body)
	}
	if r := ann.do("GET", "/api/experiments/vault", nil, nil); r.status != 403 {
		t.Fatalf("ann reads the record before the grant: %d %s", r.status, r.body)
	}
	anon := p.client(t, 1)
	if r := anon.do("GET", "/experiments/vault/health", nil, nil); r.status != 401 {
		t.Fatalf("an anonymous visitor: %d %s", r.status, r.body)
	}

	// The owner grants both actions, on edge 0.
	r := dev.do("POST", "/api/experiments/vault/permissions", map[string]any{"email": "ann@example.com", "actions": []string{"access", "export"}}, bearer)
	if r.status != 201 || !strings.Contains(string(r.body), `"changed":["access","export"]`) {
		t.Fatalf("grant: %d %s", r.status, r.body)
	}
	took := eventually(t, 10*time.Second, "ann to get in on the other edge", func() bool {
		return ann.do("GET", "/experiments/vault/health", nil, nil).status == 200
	})
	t.Logf("the grant reached the other edge within %v", took)
	if r := ann.do("GET", "/experiments/vault/", nil, nil); r.status != 200 || !strings.Contains(string(r.body), "the vault") {
		t.Errorf("ann opens the page: %d %s", r.status, r.body)
	}
	if r := dev.do("GET", "/api/experiments/vault/permissions", nil, bearer); r.status != 200 ||
		!strings.Contains(string(r.body), `"holders":[{"subject":"ann@example.com","actions":["access","export"]}]`) {
		t.Errorf("the owner's list: %d %s", r.status, r.body)
	}

	// One action revoked is enough to be refused.
	if r := dev.do("DELETE", "/api/experiments/vault/permissions/ann@example.com?action=export", nil, bearer); r.status != 200 {
		t.Fatalf("revoke: %d %s", r.status, r.body)
	}
	eventually(t, 10*time.Second, "ann to be refused again on the other edge", func() bool {
		return ann.do("GET", "/experiments/vault/health", nil, nil).status == 403
	})
	if r := dev.do("DELETE", "/api/experiments/vault/permissions/ann@example.com", nil, bearer); r.status != 200 || !strings.Contains(string(r.body), `"actions":[]`) {
		t.Fatalf("revoke the rest: %d %s", r.status, r.body)
	}

	// The owner of an experiment naming the administrators' resource
	// cannot grant it, and stays no administrator.
	sneaky := map[string]any{"auth_policy": map[string]any{"custom_resource": "admin_panel", "custom_actions": []string{"access"}}}
	if r := dev.upload(experimentZip(t, "sneaky", "<p>sneaky</p>", sneaky)); r.status != 201 {
		t.Fatalf("upload sneaky: %d %s", r.status, r.body)
	}
	r = dev.do("POST", "/api/experiments/sneaky/permissions", map[string]any{"email": "dev@example.com", "actions": []string{"access"}}, bearer)
	if r.status != 403 || r.errorCode() != "forbidden" || !strings.Contains(string(r.body), "only administrators") {
		t.Fatalf("the owner granting admin_panel: %d %s", r.status, r.body)
	}
	if r := dev.do("GET", "/admin/api/users", nil, bearer); r.status != 403 {
		t.Fatalf("the owner is an administrator now: %d %s", r.status, r.body)
	}
}
