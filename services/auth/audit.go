package auth

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authapi"
	"github.com/gnome-platform/gnome/libs/store"
)

// The audit log's read path: every service writes entries (store.Audit);
// administrators read them here, newest first, a page at a time.

func (s *Service) auditList(ctx context.Context, req authapi.AuditList) (authapi.AuditPage, error) {
	if _, err := s.admin(req.Actor); err != nil {
		return authapi.AuditPage{}, err
	}
	q := store.AuditQuery{
		Who:        strings.ToLower(strings.TrimSpace(req.Who)),
		WhatPrefix: strings.TrimSpace(req.What),
		Target:     strings.TrimSpace(req.Target),
		Limit:      req.Limit,
	}
	for field, v := range map[string]string{"/who": q.Who, "/what": q.WhatPrefix, "/target": q.Target} {
		if utf8.RuneCountInString(v) > authapi.AuditFilterMax || !utf8.ValidString(v) {
			return authapi.AuditPage{}, apierr.New(apierr.CodeValidationFailed, "filters are at most %d characters of text", authapi.AuditFilterMax).OnField(field)
		}
	}
	switch {
	case q.Limit == 0:
		q.Limit = authapi.AuditLimitDefault
	case q.Limit < 0 || q.Limit > authapi.AuditLimitMax:
		return authapi.AuditPage{}, apierr.New(apierr.CodeValidationFailed, "limit must be 1 to %d", authapi.AuditLimitMax).OnField("/limit")
	}
	if req.Since != nil {
		q.Since = *req.Since
	}
	if req.Until != nil {
		q.Until = *req.Until
	}
	if !q.Since.IsZero() && !q.Until.IsZero() && !q.Since.Before(q.Until) {
		return authapi.AuditPage{}, apierr.New(apierr.CodeValidationFailed, "since must be before until").OnField("/until")
	}
	if req.Cursor != "" {
		pos, err := parseAuditCursor(req.Cursor)
		if err != nil {
			return authapi.AuditPage{}, err
		}
		q.After = &pos
	}
	// One more than asked tells whether a page follows.
	want := q.Limit
	q.Limit++
	recs, err := s.d.Store.AuditEntries(ctx, q)
	if errors.Is(err, store.ErrAuditPosition) {
		return authapi.AuditPage{}, errBadCursor()
	}
	if err != nil {
		return authapi.AuditPage{}, err
	}
	out := authapi.AuditPage{Entries: make([]authapi.AuditEntry, 0, min(len(recs), want))}
	for i, r := range recs {
		if i == want {
			last := recs[want-1]
			out.Next = auditCursor(store.AuditPosition{When: last.When, ID: last.ID.Hex()})
			break
		}
		out.Entries = append(out.Entries, authapi.AuditEntry{
			ID: r.ID.Hex(), When: r.When.UTC(), Who: r.Who, What: r.What, Target: r.Target,
			RequestID: r.RequestID, Details: r.DetailsMap(),
		})
	}
	return out, nil
}

// auditCursor is an entry's position as an opaque token: its time in
// milliseconds (what the store keeps) and its ID.
func auditCursor(p store.AuditPosition) string {
	raw := p.When.UTC().Format("20060102T150405.000Z") + "." + p.ID
	return base64.RawURLEncoding.EncodeToString([]byte(raw))
}

func errBadCursor() error {
	return apierr.New(apierr.CodeValidationFailed, "cursor is not one this log gave: start again without it").OnField("/cursor")
}

func parseAuditCursor(c string) (store.AuditPosition, error) {
	raw, err := base64.RawURLEncoding.DecodeString(c)
	if err != nil || len(c) > 128 {
		return store.AuditPosition{}, errBadCursor()
	}
	ts, hexID, ok := strings.Cut(string(raw), "Z.")
	if !ok {
		return store.AuditPosition{}, errBadCursor()
	}
	when, err := time.Parse("20060102T150405.000Z", ts+"Z")
	if err != nil {
		return store.AuditPosition{}, errBadCursor()
	}
	return store.AuditPosition{When: when, ID: hexID}, nil
}
