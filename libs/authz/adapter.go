package authz

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/casbin/casbin/v2/model"
	"github.com/casbin/casbin/v2/persist"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// Collection holds the policy rules.
const Collection = "casbin_rules"

// rule is one stored policy line. Its _id is derived from its content, so
// the same rule can never be stored twice and single-rule changes are _id
// lookups (fast on every store).
type rule struct {
	ID    string   `bson:"_id"`
	PType string   `bson:"ptype"`
	V     []string `bson:"v"`
}

func ruleID(ptype string, values []string) string {
	h := sha256.New()
	h.Write([]byte(ptype))
	for _, v := range values {
		h.Write([]byte{0})
		h.Write([]byte(v))
	}
	return hex.EncodeToString(h.Sum(nil)[:16])
}

// Adapter stores Casbin policies in MongoDB.
type Adapter struct {
	c *mongo.Collection
}

var _ persist.Adapter = (*Adapter)(nil)

// NewAdapter stores in db's casbin_rules collection.
func NewAdapter(db *mongo.Database) *Adapter { return &Adapter{c: db.Collection(Collection)} }

func opCtx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 10*time.Second)
}

// LoadPolicy loads every rule into m.
func (a *Adapter) LoadPolicy(m model.Model) error {
	ctx, cancel := opCtx()
	defer cancel()
	cur, err := a.c.Find(ctx, bson.D{})
	if err != nil {
		return fmt.Errorf("read policy: %w", err)
	}
	var rules []rule
	if err := cur.All(ctx, &rules); err != nil {
		return fmt.Errorf("read policy: %w", err)
	}
	for _, r := range rules {
		if r.PType == "" || len(r.V) == 0 {
			continue
		}
		if err := persist.LoadPolicyArray(append([]string{r.PType}, r.V...), m); err != nil {
			return fmt.Errorf("load rule %s: %w", r.ID, err)
		}
	}
	return nil
}

// SavePolicy replaces the stored policy with m's.
func (a *Adapter) SavePolicy(m model.Model) error {
	ctx, cancel := opCtx()
	defer cancel()
	var docs []any
	for _, sec := range []string{"p", "g"} {
		for ptype, ast := range m[sec] {
			for _, r := range ast.Policy {
				docs = append(docs, rule{ID: ruleID(ptype, r), PType: ptype, V: r})
			}
		}
	}
	if _, err := a.c.DeleteMany(ctx, bson.D{}); err != nil {
		return fmt.Errorf("clear policy: %w", err)
	}
	if len(docs) == 0 {
		return nil
	}
	if _, err := a.c.InsertMany(ctx, docs); err != nil {
		return fmt.Errorf("save policy: %w", err)
	}
	return nil
}

// AddPolicy stores one rule; storing it again is a no-op.
func (a *Adapter) AddPolicy(_ string, ptype string, r []string) error {
	ctx, cancel := opCtx()
	defer cancel()
	id := ruleID(ptype, r)
	_, err := a.c.ReplaceOne(ctx, bson.D{{Key: "_id", Value: id}}, rule{ID: id, PType: ptype, V: r}, options.Replace().SetUpsert(true))
	if mongo.IsDuplicateKeyError(err) {
		// Two processes stored the same rule at once: its _id is its
		// content, so the one stored is this one.
		return nil
	}
	if err != nil {
		return fmt.Errorf("add rule: %w", err)
	}
	return nil
}

// RemovePolicy deletes one rule.
func (a *Adapter) RemovePolicy(_ string, ptype string, r []string) error {
	ctx, cancel := opCtx()
	defer cancel()
	if _, err := a.c.DeleteOne(ctx, bson.D{{Key: "_id", Value: ruleID(ptype, r)}}); err != nil {
		return fmt.Errorf("remove rule: %w", err)
	}
	return nil
}

// RemoveFilteredPolicy deletes the rules of ptype whose fields from
// fieldIndex on equal fieldValues ("" matches anything).
func (a *Adapter) RemoveFilteredPolicy(_ string, ptype string, fieldIndex int, fieldValues ...string) error {
	if fieldIndex < 0 || fieldIndex+len(fieldValues) > 6 {
		return errors.New("remove filtered rules: field index out of range")
	}
	ctx, cancel := opCtx()
	defer cancel()
	cur, err := a.c.Find(ctx, bson.D{{Key: "ptype", Value: ptype}})
	if err != nil {
		return fmt.Errorf("read rules: %w", err)
	}
	var rules []rule
	if err := cur.All(ctx, &rules); err != nil {
		return fmt.Errorf("read rules: %w", err)
	}
	for _, r := range rules {
		if matches(r.V, fieldIndex, fieldValues) {
			if _, err := a.c.DeleteOne(ctx, bson.D{{Key: "_id", Value: r.ID}}); err != nil {
				return fmt.Errorf("remove rule: %w", err)
			}
		}
	}
	return nil
}

func matches(v []string, from int, want []string) bool {
	for i, w := range want {
		if w == "" {
			continue
		}
		if from+i >= len(v) || v[from+i] != w {
			return false
		}
	}
	return true
}
