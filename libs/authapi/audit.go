package authapi

import (
	"context"
	"time"

	"github.com/gnome-platform/gnome/libs/contract"
)

// EndpointAuditList reads the audit log (store.Audit writes it) for an
// administrator: newest first, filtered, a page at a time.
var EndpointAuditList = contract.Endpoint[AuditList, AuditPage]{Service: Service, Name: "audit.list"}

// Limits of an audit log page and of its filters.
const (
	AuditLimitDefault = 50
	AuditLimitMax     = 200
	AuditFilterMax    = 256
)

// AuditList asks for a page of the audit log. Who and Target match whole
// values, What matches a prefix ("role." finds role.grant and
// role.revoke); every filter is plain text, never a pattern or an
// operator. Since is inclusive, Until exclusive. Cursor is the Next of the
// page before.
type AuditList struct {
	Actor  Actor      `json:"actor"`
	Who    string     `json:"who,omitempty"`
	What   string     `json:"what,omitempty"`
	Target string     `json:"target,omitempty"`
	Since  *time.Time `json:"since,omitempty"`
	Until  *time.Time `json:"until,omitempty"`
	Limit  int        `json:"limit,omitempty"`
	Cursor string     `json:"cursor,omitempty"`
}

// AuditEntry is one entry of the audit log.
type AuditEntry struct {
	ID        string         `json:"id"`
	When      time.Time      `json:"when"`
	Who       string         `json:"who"`
	What      string         `json:"what"`
	Target    string         `json:"target"`
	RequestID string         `json:"request_id,omitempty"`
	Details   map[string]any `json:"details,omitempty"`
}

// AuditPage is a page of the audit log, newest first; Next, when set, is
// the cursor of the page after it.
type AuditPage struct {
	Entries []AuditEntry `json:"entries"`
	Next    string       `json:"next,omitempty"`
}

// Audit reads a page of the audit log.
func (c Client) Audit(ctx context.Context, q AuditList) (AuditPage, error) {
	return EndpointAuditList.Call(ctx, c.T, q)
}
