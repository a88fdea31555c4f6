package platform_test

import (
	"context"
	"testing"

	"github.com/nats-io/nats.go"

	"github.com/gnome-platform/gnome/libs/authapi"
)

// exerciseAudit reads the audit log as the edge does for an administrator:
// the exercises before it left entries, and a page of one points to the
// next.
func exerciseAudit(ctx context.Context, t *testing.T, nc *nats.Conn) {
	t.Helper()
	sess, err := call(ctx, nc, "audit-login", authapi.EndpointLogin, authapi.Credentials{Email: busAdminEmail, Password: busAdminPassword})
	if err != nil {
		t.Fatalf("login: %v", err)
	}
	actor := authapi.Actor{Email: sess.User.Email, Token: sess.Token, RequestID: "audit-list"}
	page, err := call(ctx, nc, "audit-list", authapi.EndpointAuditList, authapi.AuditList{Actor: actor, Limit: 1})
	if err != nil {
		t.Fatalf("audit.list: %v", err)
	}
	if len(page.Entries) != 1 || page.Next == "" {
		t.Fatalf("audit.list of one: %+v, want one entry and a next page", page)
	}
}
