package auth_test

import (
	"encoding/base64"
	"fmt"
	"testing"
	"time"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authapi"
)

// The audit log reads newest first, narrowed by who, what (a prefix),
// target and time, a page at a time; filters are text, never operators or
// patterns; only administrators read it.
func TestAuditLogRead(t *testing.T) {
	w := start(t)
	root := authapi.Actor{Email: rootEmail, Token: w.login(rootEmail, rootPassword)}
	before := time.Now().Add(-time.Second)
	for i := range 5 {
		email := fmt.Sprintf("u%d@example.com", i)
		if _, err := w.edge.CreateUser(w.ctx, authapi.CreateUser{Actor: root, Email: email, Password: "a long enough passphrase"}); err != nil {
			t.Fatalf("create %s: %v", email, err)
		}
	}
	if _, err := w.edge.GrantRole(w.ctx, authapi.RoleChange{Actor: root, Email: "u3@example.com", Role: "developer"}); err != nil {
		t.Fatal(err)
	}

	all, err := w.edge.Audit(w.ctx, authapi.AuditList{Actor: root})
	if err != nil {
		t.Fatalf("audit.list: %v", err)
	}
	if len(all.Entries) != 6 || all.Next != "" {
		t.Fatalf("every entry: got %d (next %q), want 6 and no next page: %+v", len(all.Entries), all.Next, all.Entries)
	}
	first := all.Entries[0]
	if first.What != "role.grant" || first.Target != "u3@example.com" || first.Who != rootEmail || first.Details["roles"] == nil {
		t.Errorf("newest entry: %+v, want the grant to u3 by the admin with its roles", first)
	}

	// Pages of two walk the whole log once, in order.
	var seen []string
	cursor := ""
	for range 5 {
		p, err := w.edge.Audit(w.ctx, authapi.AuditList{Actor: root, Limit: 2, Cursor: cursor})
		if err != nil {
			t.Fatalf("page after %q: %v", cursor, err)
		}
		for _, e := range p.Entries {
			seen = append(seen, e.ID)
		}
		if cursor = p.Next; cursor == "" {
			break
		}
	}
	if len(seen) != 6 {
		t.Fatalf("paging saw %d entries, want 6", len(seen))
	}
	for i, e := range all.Entries {
		if seen[i] != e.ID {
			t.Fatalf("page order differs at %d: %v vs %+v", i, seen, all.Entries)
		}
	}

	count := func(what string, q authapi.AuditList) int {
		t.Helper()
		q.Actor = root
		p, err := w.edge.Audit(w.ctx, q)
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		return len(p.Entries)
	}
	future := time.Now().Add(time.Hour)
	for _, tc := range []struct {
		name string
		q    authapi.AuditList
		want int
	}{
		{"by who, any case", authapi.AuditList{Who: "ROOT@example.com"}, 6},
		{"by what prefix", authapi.AuditList{What: "role."}, 1},
		{"by whole what", authapi.AuditList{What: "user.create"}, 5},
		{"by target", authapi.AuditList{Target: "u1@example.com"}, 1},
		{"in the time range", authapi.AuditList{Since: &before, Until: &future}, 6},
		{"after the range", authapi.AuditList{Since: &future}, 0},
		// Hostile filters are text: none matches anything.
		{"a regex in what", authapi.AuditList{What: ".*"}, 0},
		{"a regex in who", authapi.AuditList{Who: ".*"}, 0},
		{"an operator in target", authapi.AuditList{Target: `{"$ne":""}`}, 0},
		{"an operator in who", authapi.AuditList{Who: `{"$gt":""}`}, 0},
		{"a dot in the prefix is a dot", authapi.AuditList{What: "user."}, 5},
		{"a dot in the prefix is not any character", authapi.AuditList{What: "userXcreate"}, 0},
	} {
		if got := count(tc.name, tc.q); got != tc.want {
			t.Errorf("%s: %d entries, want %d", tc.name, got, tc.want)
		}
	}

	for _, tc := range []struct {
		name  string
		q     authapi.AuditList
		field string
	}{
		{"a limit over the maximum", authapi.AuditList{Limit: authapi.AuditLimitMax + 1}, "/limit"},
		{"a negative limit", authapi.AuditList{Limit: -1}, "/limit"},
		{"a forged cursor", authapi.AuditList{Cursor: "eyIkbmUiOjF9"}, "/cursor"},
		{"a cursor with a bad ID", authapi.AuditList{Cursor: base64.RawURLEncoding.EncodeToString([]byte("20250601T120000.000Z.not-hex"))}, "/cursor"},
		{"an empty range", authapi.AuditList{Since: &future, Until: &before}, "/until"},
	} {
		tc.q.Actor = root
		_, err := w.edge.Audit(w.ctx, tc.q)
		wantCode(t, tc.name, err, apierr.CodeValidationFailed)
		if ae := apierr.From(err); ae.Field != tc.field {
			t.Errorf("%s: field %q, want %q", tc.name, ae.Field, tc.field)
		}
	}

	// A developer's token reads nothing.
	dev := authapi.Actor{Email: rootEmail, Token: w.login("u3@example.com", "a long enough passphrase")}
	_, err = w.edge.Audit(w.ctx, authapi.AuditList{Actor: dev})
	wantCode(t, "a developer reading the audit log", err, apierr.CodeForbidden)
}
