package auth

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// The pending password resets' repository: the auth service alone reads and
// writes them (passwordreset.go decides).

// resetsCollection holds pending reset codes, keyed by the code's SHA-256:
// a random 256-bit code needs no slow hash, and a lookup is an _id lookup.
const resetsCollection = "password_resets"

type passwordReset struct {
	Hash      string    `bson:"_id"`
	Email     string    `bson:"email"`
	UID       string    `bson:"uid"`
	CreatedBy string    `bson:"created_by"`
	CreatedAt time.Time `bson:"created_at"`
	ExpiresAt time.Time `bson:"expires_at"`
}

type resets struct{ c *mongo.Collection }

// replace stores r as the account's only pending reset.
func (s resets) replace(ctx context.Context, r passwordReset) error {
	if err := s.dropFor(ctx, r.Email); err != nil {
		return err
	}
	if _, err := s.c.InsertOne(ctx, r); err != nil {
		return fmt.Errorf("store reset code: %w", err)
	}
	return nil
}

// take removes and returns the reset of hash; nil when there is none. Of
// two requests taking the same one, one gets it.
func (s resets) take(ctx context.Context, hash string) (*passwordReset, error) {
	var r passwordReset
	err := s.c.FindOneAndDelete(ctx, bson.D{{Key: "_id", Value: hash}}).Decode(&r)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("take reset code: %w", err)
	}
	return &r, nil
}

// dropFor removes the account's pending resets.
func (s resets) dropFor(ctx context.Context, email string) error {
	if _, err := s.c.DeleteMany(ctx, bson.D{{Key: "email", Value: email}}); err != nil {
		return fmt.Errorf("drop reset codes: %w", err)
	}
	return nil
}
