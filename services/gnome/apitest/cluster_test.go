package apitest

import (
	"strconv"
	"sync"
	"testing"
	"time"
)

// Two edge instances share one limit: 20 concurrent wrong-password sign-ins
// from one address, spread over both, let exactly 5 through.
func TestLoginLimitHoldsAcrossEdges(t *testing.T) {
	p := startPlatform(t, 2, nil)
	a := p.client(t, 0)
	b := a.on(p, 1)
	var mu sync.Mutex
	counts := map[int]int{}
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func(c *client) {
			defer wg.Done()
			r := c.do("POST", "/auth/login", map[string]string{"email": "dev@example.com", "password": "wrong-password-" + strconv.Itoa(i)}, nil)
			if r.status == 429 {
				if s, err := strconv.Atoi(r.header.Get("Retry-After")); err != nil || s < 1 || s > 60 {
					t.Errorf("Retry-After = %q", r.header.Get("Retry-After"))
				}
				if r.errorCode() != "rate_limited" {
					t.Errorf("429 body: %s", r.body)
				}
			}
			mu.Lock()
			counts[r.status]++
			mu.Unlock()
		}([]*client{a, b}[i%2])
	}
	wg.Wait()
	if counts[401] != 5 || counts[429] != 15 || len(counts) != 2 {
		t.Fatalf("statuses = %v, want 5×401 and 15×429", counts)
	}
	// Another address is not affected.
	other := p.client(t, 1)
	if r := other.do("POST", "/auth/login", map[string]string{"email": "dev@example.com", "password": "x-wrong-password"}, nil); r.status != 401 {
		t.Fatalf("another client got %d", r.status)
	}
}

// A sign-out on one edge ends the token on the other within a second.
func TestLogoutReachesEveryEdge(t *testing.T) {
	p := startPlatform(t, 2, nil)
	a := p.client(t, 0)
	a.login(adminEmail, adminPassword)
	token := a.cookie("token")
	b := p.client(t, 1)
	bearer := map[string]string{"Authorization": "Bearer " + token}
	if r := b.do("GET", "/api/me", nil, bearer); r.status != 200 {
		t.Fatalf("token not accepted on the second edge: %d", r.status)
	}
	if r := a.do("POST", "/auth/logout", nil, nil); r.status != 200 {
		t.Fatalf("logout: %d %s", r.status, r.body)
	}
	took := eventually(t, time.Second, "the other edge to refuse the signed-out token", func() bool {
		return b.do("GET", "/api/me", nil, bearer).errorCode() == "token_revoked"
	})
	t.Logf("revocation reached the other edge in %v", took)
	if r := a.do("GET", "/api/me", nil, bearer); r.status != 401 {
		t.Fatalf("signed-out token still works on its own edge: %d", r.status)
	}
}

// A role granted through one edge is enforced by the other within a second:
// the user's old session ends there, and a new one has the role.
func TestRoleGrantReachesEveryEdge(t *testing.T) {
	p := startPlatform(t, 2, nil)
	admin := p.client(t, 0)
	admin.login(adminEmail, adminPassword)
	if r := admin.do("POST", "/admin/api/users", map[string]any{"email": "ops@example.com", "password": "operations-passphrase"}, nil); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.body)
	}
	ops := p.client(t, 1)
	ops.login("ops@example.com", "operations-passphrase")
	if r := ops.do("GET", "/admin/api/users", nil, nil); r.status != 403 {
		t.Fatalf("before the grant: %d", r.status)
	}
	if r := admin.do("POST", "/admin/api/users/ops@example.com/roles/admin", nil, nil); r.status != 200 {
		t.Fatalf("grant: %d %s", r.status, r.body)
	}
	start := time.Now()
	eventually(t, time.Second, "the old session to end on the other edge", func() bool {
		return ops.do("GET", "/api/me", nil, nil).errorCode() == "token_revoked"
	})
	fresh := p.client(t, 1)
	fresh.login("ops@example.com", "operations-passphrase")
	eventually(t, time.Second-time.Since(start)+100*time.Millisecond, "the other edge to let the new admin in", func() bool {
		return fresh.do("GET", "/admin/api/users", nil, nil).status == 200
	})
	t.Logf("grant enforced on the other edge %v after it was made", time.Since(start))
	// And a revocation the same way.
	if r := admin.do("DELETE", "/admin/api/users/ops@example.com/roles/admin", nil, nil); r.status != 200 {
		t.Fatalf("revoke: %d", r.status)
	}
	again := p.client(t, 1)
	again.login("ops@example.com", "operations-passphrase")
	eventually(t, time.Second, "the other edge to refuse the former admin", func() bool {
		return again.do("GET", "/admin/api/users", nil, nil).status == 403
	})
}
