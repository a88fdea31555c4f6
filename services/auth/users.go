package auth

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authapi"
	"github.com/gnome-platform/gnome/libs/store"
)

// user is a stored account. Its _id is the normalised email, so every
// lookup the service makes is an _id lookup (fast on every store); UID is
// the stable opaque ID tokens carry as their subject.
type user struct {
	Email        string    `bson:"_id"`
	EmailField   string    `bson:"email"`
	UID          string    `bson:"uid"`
	PasswordHash string    `bson:"password_hash"`
	Roles        []string  `bson:"roles"`
	IsAdmin      bool      `bson:"is_admin"`
	Disabled     bool      `bson:"disabled"`
	TokenVersion int64     `bson:"token_version"`
	CreatedAt    time.Time `bson:"created_at"`
	UpdatedAt    time.Time `bson:"updated_at"`
}

func (u *user) public() authapi.User {
	roles := u.Roles
	if roles == nil {
		roles = []string{}
	}
	return authapi.User{ID: u.UID, Email: u.Email, Roles: roles, Disabled: u.Disabled, CreatedAt: u.CreatedAt}
}

// users is the users collection.
type users struct{ c *mongo.Collection }

// NormalizeEmail lower-cases and checks an email address; it returns a
// validation error naming the field otherwise.
func NormalizeEmail(raw string) (string, error) {
	e := strings.ToLower(strings.TrimSpace(raw))
	if e == "" {
		return "", apierr.New(apierr.CodeValidationFailed, "email is required").OnField("/email")
	}
	a, err := mail.ParseAddress(e)
	if err != nil || a.Address != e || len(e) > 254 || !strings.Contains(e[strings.IndexByte(e, '@')+1:], ".") {
		return "", apierr.New(apierr.CodeValidationFailed, "email is not a valid address").OnField("/email")
	}
	return e, nil
}

func newUID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (s users) get(ctx context.Context, email string) (*user, error) {
	return store.FindByID[user](ctx, s.c, email)
}

// create stores a new user; an existing email is a conflict.
func (s users) create(ctx context.Context, email, hash string, roles []string) (*user, error) {
	now := time.Now().UTC().Truncate(time.Millisecond)
	u := &user{Email: email, EmailField: email, UID: newUID(), PasswordHash: hash, Roles: roles,
		IsAdmin: contains(roles, "admin"), CreatedAt: now, UpdatedAt: now}
	if _, err := s.c.InsertOne(ctx, u); err != nil {
		if mongo.IsDuplicateKeyError(err) {
			return nil, apierr.New(apierr.CodeConflict, "an account with this email exists already").OnField("/email")
		}
		return nil, fmt.Errorf("create user: %w", err)
	}
	return u, nil
}

// update changes a user with fn and bumps its token version when fn says
// so, ending every token issued before. It returns the updated user.
func (s users) update(ctx context.Context, email string, fn func(u *user) (endSessions bool, err error)) (*user, error) {
	for attempt := 0; attempt < 5; attempt++ {
		u, err := s.get(ctx, email)
		if err != nil {
			return nil, err
		}
		if u == nil {
			return nil, apierr.New(apierr.CodeNotFound, "no user %s", email)
		}
		prev := u.TokenVersion
		end, err := fn(u)
		if err != nil {
			return nil, err
		}
		if end {
			u.TokenVersion++
		}
		u.IsAdmin = contains(u.Roles, "admin")
		u.UpdatedAt = time.Now().UTC().Truncate(time.Millisecond)
		// Compare-and-set on the token version: a concurrent change retries.
		res, err := s.c.ReplaceOne(ctx, bson.D{{Key: "_id", Value: email}, {Key: "token_version", Value: prev}}, u)
		if err != nil {
			return nil, fmt.Errorf("update user: %w", err)
		}
		if res.MatchedCount == 1 {
			return u, nil
		}
	}
	return nil, apierr.New(apierr.CodeConflict, "the user changed meanwhile; try again")
}

func (s users) list(ctx context.Context) ([]user, error) {
	cur, err := s.c.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(10_000))
	if err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	var out []user
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("list users: %w", err)
	}
	return out, nil
}

// anyAdmin reports whether an admin exists. It scans; it runs once at start.
func (s users) anyAdmin(ctx context.Context) (bool, error) {
	n, err := s.c.CountDocuments(ctx, bson.D{{Key: "roles", Value: "admin"}, {Key: "disabled", Value: false}}, options.Count().SetLimit(1))
	if err != nil {
		return false, fmt.Errorf("look for an admin: %w", err)
	}
	return n > 0, nil
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// audit writes one entry of the audit log.
func audit(ctx context.Context, st *store.Store, actor authapi.Actor, what, target string, details map[string]any) error {
	return st.Audit(ctx, store.AuditEntry{Who: actor.Email, What: what, Target: target, RequestID: actor.RequestID, Details: details})
}
