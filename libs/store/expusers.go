package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// ExperimentUsersCollection holds the accounts that belong to one
// experiment alone (sub_auth experiment_users). They are never platform
// users: the users collection knows nothing of them.
const ExperimentUsersCollection = "experiment_users"

// ExpAccount is an experiment's account as stored. Its _id is the slug and
// the normalised email, so that sign-in is an _id lookup and one address
// has one account per experiment; UID is the stable ID its tokens carry.
type ExpAccount struct {
	Key   string `bson:"_id"`
	Slug  string `bson:"slug"`
	Email string `bson:"email"`
	UID   string `bson:"uid"`
	// PasswordHash is "" for an account that cannot sign in with a
	// password (a demo account without one: demo sign-in alone).
	PasswordHash string `bson:"password_hash"`
	// Kind is "" for an account made by sign-up, ExpKindDemo for one of
	// sub_auth.demo_users; Role and ExtraData are the demo user's.
	Kind      string         `bson:"kind,omitempty"`
	Role      string         `bson:"role,omitempty"`
	ExtraData map[string]any `bson:"extra_data,omitempty"`
	// LinkedTo is, for an account of kind ExpKindLinked, the platform
	// user's ID it belongs to (sub_auth hybrid, link_platform_users).
	LinkedTo     string    `bson:"linked_to,omitempty"`
	Disabled     bool      `bson:"disabled"`
	TokenVersion int64     `bson:"token_version"`
	CreatedAt    time.Time `bson:"created_at"`
	UpdatedAt    time.Time `bson:"updated_at"`
}

// Kinds of experiment accounts besides those made by sign-up.
const (
	// ExpKindDemo is an account of sub_auth.demo_users.
	ExpKindDemo = "demo"
	// ExpKindLinked is the account of a platform user on a hybrid
	// experiment: it has no password, and is used through the platform's
	// hand-off alone.
	ExpKindLinked = "linked"
)

// ErrDuplicateAccount is an email that has an account in the experiment.
var ErrDuplicateAccount = errors.New("an account with this email exists already")

// ExpAccounts is the repository of experiments' accounts; the auth service
// alone uses it.
type ExpAccounts struct{ c *mongo.Collection }

// ExpAccounts is the repository over this store.
func (s *Store) ExpAccounts() ExpAccounts {
	return ExpAccounts{s.Collection(ExperimentUsersCollection)}
}

func expAccountKey(slug, email string) string { return slug + "/" + email }

// EnsureIndexes creates the index that finds an account by its ID.
func (r ExpAccounts) EnsureIndexes(ctx context.Context) error {
	m := mongo.IndexModel{Keys: bson.D{{Key: "slug", Value: 1}, {Key: "uid", Value: 1}},
		Options: options.Index().SetName("slug_uid").SetUnique(true)}
	if _, err := r.c.Indexes().CreateOne(ctx, m); err != nil {
		return fmt.Errorf("create indexes on %s: %w", ExperimentUsersCollection, err)
	}
	return nil
}

// Create stores a; an email that has an account already is
// ErrDuplicateAccount.
func (r ExpAccounts) Create(ctx context.Context, a *ExpAccount) error {
	a.Key = expAccountKey(a.Slug, a.Email)
	if _, err := r.c.InsertOne(ctx, a); err != nil {
		if mongo.IsDuplicateKeyError(err) {
			return ErrDuplicateAccount
		}
		return fmt.Errorf("create an account of %s: %w", a.Slug, err)
	}
	return nil
}

// ByEmail is slug's account of email, or nil.
func (r ExpAccounts) ByEmail(ctx context.Context, slug, email string) (*ExpAccount, error) {
	return FindByID[ExpAccount](ctx, r.c, expAccountKey(slug, email))
}

// ByID is slug's account of ID uid, or nil.
func (r ExpAccounts) ByID(ctx context.Context, slug, uid string) (*ExpAccount, error) {
	var a ExpAccount
	err := r.c.FindOne(ctx, bson.D{{Key: "slug", Value: slug}, {Key: "uid", Value: uid}}).Decode(&a)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read an account of %s: %w", slug, err)
	}
	return &a, nil
}

// List are slug's accounts, oldest first (at most 10,000).
func (r ExpAccounts) List(ctx context.Context, slug string) ([]ExpAccount, error) {
	cur, err := r.c.Find(ctx, bson.D{{Key: "slug", Value: slug}},
		options.Find().SetSort(bson.D{{Key: "created_at", Value: 1}, {Key: "_id", Value: 1}}).SetLimit(10_000))
	if err != nil {
		return nil, fmt.Errorf("list the accounts of %s: %w", slug, err)
	}
	out := []ExpAccount{}
	if err := cur.All(ctx, &out); err != nil {
		return nil, fmt.Errorf("list the accounts of %s: %w", slug, err)
	}
	return out, nil
}

// SetDisabled changes an account's state; a change bumps its token
// version, ending its sessions. It returns the account (nil when none).
func (r ExpAccounts) SetDisabled(ctx context.Context, slug, uid string, disabled bool) (*ExpAccount, error) {
	filter := bson.D{{Key: "slug", Value: slug}, {Key: "uid", Value: uid}}
	update := bson.D{
		{Key: "$set", Value: bson.D{{Key: "disabled", Value: disabled}, {Key: "updated_at", Value: time.Now().UTC().Truncate(time.Millisecond)}}},
		{Key: "$inc", Value: bson.D{{Key: "token_version", Value: 1}}},
	}
	var a ExpAccount
	err := r.c.FindOneAndUpdate(ctx, filter, update, options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&a)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("update an account of %s: %w", slug, err)
	}
	return &a, nil
}

// Delete removes an account and returns it (nil when there was none).
func (r ExpAccounts) Delete(ctx context.Context, slug, uid string) (*ExpAccount, error) {
	var a ExpAccount
	err := r.c.FindOneAndDelete(ctx, bson.D{{Key: "slug", Value: slug}, {Key: "uid", Value: uid}}).Decode(&a)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("delete an account of %s: %w", slug, err)
	}
	return &a, nil
}
