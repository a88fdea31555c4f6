package auth

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gnome-platform/gnome/libs/authapi"
	"github.com/gnome-platform/gnome/libs/store"
)

// The personal API tokens' repository: the auth service alone reads and
// writes them (tokens.go decides).

// tokensCollection holds personal tokens, one document each, keyed by ID.
const tokensCollection = "api_tokens"

// lastUseEvery is how stale a token's last use may be: an exchange records
// a use only when the stored one is older, so a busy token costs at most
// one write a minute (and the edge exchanges about once a minute anyway).
const lastUseEvery = time.Minute

type apiToken struct {
	ID         string     `bson:"_id"`
	User       string     `bson:"user"` // the user's normalised email (users' _id)
	UID        string     `bson:"uid"`  // the user's stable ID: a deleted and recreated account is someone else
	Name       string     `bson:"name"`
	Hash       string     `bson:"hash"`
	Roles      []string   `bson:"roles"`
	CreatedAt  time.Time  `bson:"created_at"`
	ExpiresAt  *time.Time `bson:"expires_at"`
	LastUsedAt *time.Time `bson:"last_used_at"`
	RevokedAt  *time.Time `bson:"revoked_at"`
}

func (t *apiToken) public() authapi.Token {
	return authapi.Token{ID: t.ID, Name: t.Name, Roles: nonNil(t.Roles), CreatedAt: t.CreatedAt, ExpiresAt: t.ExpiresAt, LastUsedAt: t.LastUsedAt}
}

func (t *apiToken) expired(now time.Time) bool {
	return t.ExpiresAt != nil && !now.Before(*t.ExpiresAt)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

type apiTokens struct{ c *mongo.Collection }

func (r apiTokens) ensureIndexes(ctx context.Context) error {
	_, err := r.c.Indexes().CreateOne(ctx, mongo.IndexModel{Keys: bson.D{{Key: "user", Value: 1}, {Key: "created_at", Value: 1}},
		Options: options.Index().SetName("user_created_at")})
	if err != nil {
		return fmt.Errorf("create indexes on %s: %w", tokensCollection, err)
	}
	return nil
}

func (r apiTokens) get(ctx context.Context, id string) (*apiToken, error) {
	return store.FindByID[apiToken](ctx, r.c, id)
}

// ofUser lists a user's tokens that are not revoked, newest first.
func (r apiTokens) ofUser(ctx context.Context, email string) ([]apiToken, error) {
	cur, err := r.c.Find(ctx, bson.D{{Key: "user", Value: email}, {Key: "revoked_at", Value: nil}},
		options.Find().SetSort(bson.D{{Key: "created_at", Value: -1}}).SetLimit(1000))
	if err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	out := []apiToken{}
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("list tokens: %w", err)
	}
	return out, nil
}

func (r apiTokens) insert(ctx context.Context, t *apiToken) error {
	if _, err := r.c.InsertOne(ctx, t); err != nil {
		return fmt.Errorf("store token: %w", err)
	}
	return nil
}

func (r apiTokens) revoke(ctx context.Context, id string, at time.Time) error {
	if _, err := r.c.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$set", Value: bson.D{{Key: "revoked_at", Value: at}}}}); err != nil {
		return fmt.Errorf("revoke token: %w", err)
	}
	return nil
}

// touch records a use at at, unless one within lastUseEvery is recorded.
func (r apiTokens) touch(ctx context.Context, id string, at time.Time) error {
	filter := bson.D{{Key: "_id", Value: id}, {Key: "$or", Value: bson.A{
		bson.D{{Key: "last_used_at", Value: nil}},
		bson.D{{Key: "last_used_at", Value: bson.D{{Key: "$lt", Value: at.Add(-lastUseEvery)}}}},
	}}}
	if _, err := r.c.UpdateOne(ctx, filter, bson.D{{Key: "$set", Value: bson.D{{Key: "last_used_at", Value: at}}}}); err != nil {
		return fmt.Errorf("record token use: %w", err)
	}
	return nil
}
