package store

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gnome-platform/gnome/libs/uploadapi"
)

// ExperimentSecrets holds experiments' secrets, sealed (see Secrets).
const ExperimentSecrets = "experiment_secrets"

func init() {
	// An experiment's secrets are listed by slug; each one's _id is
	// slug/name.
	coreIndexes[ExperimentSecrets] = []index{{name: "slug", keys: bson.D{{Key: "slug", Value: 1}}}}
}

// Sealing. Each value is sealed with AES-256-GCM under a key derived from
// SECRET_KEY by HKDF-SHA256 for this purpose alone, with a fresh random
// nonce, and the experiment's slug and the secret's name as additional
// data: a sealed value copied to another experiment or name does not
// open. Each stored value names its key by an ID derived from the same
// secret (never from the key itself), so that after SECRET_KEY changes a
// value is known to be of the previous key (SECRET_KEY_PREVIOUS), which
// still opens it, or of a lost one.

const (
	sealPurpose  = "gnome experiment secrets aes-256-gcm v1"
	keyIDPurpose = "gnome experiment secrets key id v1"
	sealAADTag   = "gnome secret v1"
)

var (
	// ErrSecretKeyLost is a value sealed with a key this platform does not
	// have: neither SECRET_KEY's nor SECRET_KEY_PREVIOUS's.
	ErrSecretKeyLost = errors.New("the secret was sealed with a key this platform no longer has")
	// ErrSecretTampered is a value that does not open with the key it
	// names: changed, or moved from another experiment or name.
	ErrSecretTampered = errors.New("the sealed secret does not open: it was changed or moved")
)

type sealKey struct {
	id   string
	aead cipher.AEAD
}

func deriveSealKey(secret string) (sealKey, error) {
	k, err := hkdf.Key(sha256.New, []byte(secret), []byte("gnome"), sealPurpose, 32)
	if err != nil {
		return sealKey{}, fmt.Errorf("derive the secrets key: %w", err)
	}
	id, err := hkdf.Key(sha256.New, []byte(secret), []byte("gnome"), keyIDPurpose, 8)
	if err != nil {
		return sealKey{}, fmt.Errorf("derive the secrets key id: %w", err)
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return sealKey{}, fmt.Errorf("make the secrets cipher: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return sealKey{}, fmt.Errorf("make the secrets cipher: %w", err)
	}
	return sealKey{id: hex.EncodeToString(id), aead: aead}, nil
}

// Sealer seals secrets with the key of SECRET_KEY and opens them with it
// or with the key of SECRET_KEY_PREVIOUS. It is safe for concurrent use.
type Sealer struct {
	cur  sealKey
	prev *sealKey
}

// NewSealer derives the keys of secretKey and, when set and different,
// of previous.
func NewSealer(secretKey, previous string) (*Sealer, error) {
	if secretKey == "" {
		return nil, errors.New("no SECRET_KEY to seal secrets with")
	}
	cur, err := deriveSealKey(secretKey)
	if err != nil {
		return nil, err
	}
	s := &Sealer{cur: cur}
	if previous != "" && previous != secretKey {
		p, err := deriveSealKey(previous)
		if err != nil {
			return nil, err
		}
		s.prev = &p
	}
	return s, nil
}

// KeyID is the ID of the current key.
func (s *Sealer) KeyID() string { return s.cur.id }

// Sealed is a sealed value as stored.
type Sealed struct {
	KeyID string `bson:"key_id"`
	Nonce []byte `bson:"nonce"`
	Box   []byte `bson:"sealed"`
}

func sealAAD(slug, name string) []byte {
	return []byte(sealAADTag + "\x00" + slug + "\x00" + name)
}

// Seal seals value as the secret name of experiment slug.
func (s *Sealer) Seal(slug, name string, value []byte) (Sealed, error) {
	nonce := make([]byte, s.cur.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return Sealed{}, fmt.Errorf("make a nonce: %w", err)
	}
	return Sealed{KeyID: s.cur.id, Nonce: nonce, Box: s.cur.aead.Seal(nil, nonce, value, sealAAD(slug, name))}, nil
}

// keyOf is the key v names, or nil.
func (s *Sealer) keyOf(v Sealed) *sealKey {
	switch {
	case v.KeyID == s.cur.id:
		return &s.cur
	case s.prev != nil && v.KeyID == s.prev.id:
		return s.prev
	}
	return nil
}

// KeyState is uploadapi.SecretKeyCurrent, SecretKeyPrevious or
// SecretKeyLost for v.
func (s *Sealer) KeyState(v Sealed) string {
	switch k := s.keyOf(v); {
	case k == nil:
		return uploadapi.SecretKeyLost
	case k == &s.cur:
		return uploadapi.SecretKeyCurrent
	}
	return uploadapi.SecretKeyPrevious
}

// Open opens v as the secret name of experiment slug: ErrSecretKeyLost
// when its key is unknown, ErrSecretTampered when it does not open.
func (s *Sealer) Open(slug, name string, v Sealed) ([]byte, error) {
	k := s.keyOf(v)
	if k == nil {
		return nil, ErrSecretKeyLost
	}
	if len(v.Nonce) != k.aead.NonceSize() {
		return nil, ErrSecretTampered
	}
	out, err := k.aead.Open(nil, v.Nonce, v.Box, sealAAD(slug, name))
	if err != nil {
		return nil, ErrSecretTampered
	}
	return out, nil
}

// Secrets is the repository of experiments' secrets. The upload service
// writes it; actor workers read values through Reveal. A Secrets without a
// sealer lists names only (exports).
type Secrets struct {
	c      *mongo.Collection
	sealer *Sealer
}

// Secrets is the repository over this store; sealer may be nil for
// listing names.
func (s *Store) Secrets(sealer *Sealer) Secrets {
	return Secrets{c: s.Collection(ExperimentSecrets), sealer: sealer}
}

// SecretsOf is the repository over db, for packages that hold the
// database rather than a Store.
func SecretsOf(db *mongo.Database, sealer *Sealer) Secrets {
	return Secrets{c: db.Collection(ExperimentSecrets), sealer: sealer}
}

// secretDoc is a secret as stored; its _id is slug/name.
type secretDoc struct {
	ID        string    `bson:"_id"`
	Slug      string    `bson:"slug"`
	Name      string    `bson:"name"`
	Sealed    Sealed    `bson:",inline"`
	Size      int       `bson:"size"`
	CreatedAt time.Time `bson:"created_at"`
	CreatedBy string    `bson:"created_by"`
	UpdatedAt time.Time `bson:"updated_at"`
	UpdatedBy string    `bson:"updated_by"`
}

func secretID(slug, name string) string { return slug + "/" + name }

func (r Secrets) info(d secretDoc) uploadapi.Secret {
	key := ""
	if r.sealer != nil {
		key = r.sealer.KeyState(d.Sealed)
	}
	return uploadapi.Secret{Name: d.Name, Size: d.Size, CreatedAt: d.CreatedAt, CreatedBy: d.CreatedBy,
		UpdatedAt: d.UpdatedAt, UpdatedBy: d.UpdatedBy, Key: key}
}

// ErrTooManySecrets is a new secret past the limit of one experiment.
var ErrTooManySecrets = errors.New("too many secrets")

// Put seals value as the secret name of slug, creating it (when slug has
// fewer than limit secrets) or replacing its value, by who. It returns the
// secret as stored and whether this call created it.
func (r Secrets) Put(ctx context.Context, slug, name, value, by string, limit int) (uploadapi.Secret, bool, error) {
	if r.sealer == nil {
		return uploadapi.Secret{}, false, errors.New("put a secret: no sealer")
	}
	sealed, err := r.sealer.Seal(slug, name, []byte(value))
	if err != nil {
		return uploadapi.Secret{}, false, err
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	id := secretID(slug, name)
	for range 4 {
		res, err := r.c.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$set", Value: bson.D{
			{Key: "key_id", Value: sealed.KeyID}, {Key: "nonce", Value: sealed.Nonce}, {Key: "sealed", Value: sealed.Box},
			{Key: "size", Value: len(value)}, {Key: "updated_at", Value: now}, {Key: "updated_by", Value: by},
		}}})
		if err != nil {
			return uploadapi.Secret{}, false, fmt.Errorf("replace secret %s of %s: %w", name, slug, err)
		}
		if res.MatchedCount > 0 {
			d, err := FindByID[secretDoc](ctx, r.c, id)
			if err != nil || d == nil {
				return uploadapi.Secret{}, false, errors.Join(err, fmt.Errorf("read secret %s of %s back", name, slug))
			}
			return r.info(*d), false, nil
		}
		doc := secretDoc{ID: id, Slug: slug, Name: name, Sealed: sealed, Size: len(value),
			CreatedAt: now, CreatedBy: by, UpdatedAt: now, UpdatedBy: by}
		if _, err := r.c.InsertOne(ctx, doc); err != nil {
			if mongo.IsDuplicateKeyError(err) {
				continue // created meanwhile: replace it
			}
			return uploadapi.Secret{}, false, fmt.Errorf("create secret %s of %s: %w", name, slug, err)
		}
		// The count is checked after the insert, so that simultaneous
		// creations can never pass the limit together: each that finds it
		// passed takes its own back (both may, leaving fewer, never more).
		n, err := r.c.CountDocuments(ctx, bson.D{{Key: "slug", Value: slug}})
		if err == nil && n <= int64(limit) {
			return r.info(doc), true, nil
		}
		if _, derr := r.c.DeleteOne(context.WithoutCancel(ctx), bson.D{{Key: "_id", Value: id}, {Key: "created_at", Value: now}}); derr != nil {
			err = errors.Join(err, derr)
		}
		if err != nil {
			return uploadapi.Secret{}, false, fmt.Errorf("count the secrets of %s: %w", slug, err)
		}
		return uploadapi.Secret{}, false, ErrTooManySecrets
	}
	return uploadapi.Secret{}, false, fmt.Errorf("put secret %s of %s: changed by others on every attempt: %w", name, slug, ErrDuplicate)
}

// List are slug's secrets, by name; never their values.
func (r Secrets) List(ctx context.Context, slug string) ([]uploadapi.Secret, error) {
	docs, err := r.find(ctx, bson.D{{Key: "slug", Value: slug}})
	if err != nil {
		return nil, err
	}
	out := make([]uploadapi.Secret, 0, len(docs))
	for _, d := range docs {
		out = append(out, r.info(d))
	}
	return out, nil
}

// Names are the names of slug's secrets, sorted.
func (r Secrets) Names(ctx context.Context, slug string) ([]string, error) {
	docs, err := r.find(ctx, bson.D{{Key: "slug", Value: slug}})
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(docs))
	for _, d := range docs {
		out = append(out, d.Name)
	}
	slices.Sort(out)
	return out, nil
}

// Get is the secret name of slug, or nil.
func (r Secrets) Get(ctx context.Context, slug, name string) (*uploadapi.Secret, error) {
	d, err := FindByID[secretDoc](ctx, r.c, secretID(slug, name))
	if err != nil || d == nil {
		return nil, err
	}
	s := r.info(*d)
	return &s, nil
}

// Reveal is the value of the secret name of slug; found is false when it
// is not set. ErrSecretKeyLost and ErrSecretTampered say why a stored
// value does not open.
func (r Secrets) Reveal(ctx context.Context, slug, name string) (value string, found bool, err error) {
	if r.sealer == nil {
		return "", false, errors.New("reveal a secret: no sealer")
	}
	d, err := FindByID[secretDoc](ctx, r.c, secretID(slug, name))
	if err != nil || d == nil {
		return "", false, err
	}
	// The stored slug and name are not trusted: the ones asked for are
	// the additional data, so a document moved under another _id does not
	// open either.
	v, err := r.sealer.Open(slug, name, d.Sealed)
	if err != nil {
		return "", true, err
	}
	return string(v), true, nil
}

// Remove deletes the secret name of slug and returns it, or nil when there
// was none.
func (r Secrets) Remove(ctx context.Context, slug, name string) (*uploadapi.Secret, error) {
	var d secretDoc
	err := r.c.FindOneAndDelete(ctx, bson.D{{Key: "_id", Value: secretID(slug, name)}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("delete secret %s of %s: %w", name, slug, err)
	}
	s := r.info(d)
	return &s, nil
}

// RemoveOf deletes every secret of slug (the experiment is gone, and a new
// one of that slug starts with none) and returns how many there were.
func (r Secrets) RemoveOf(ctx context.Context, slug string) (int64, error) {
	res, err := r.c.DeleteMany(ctx, bson.D{{Key: "slug", Value: slug}})
	if err != nil {
		return 0, fmt.Errorf("delete the secrets of %s: %w", slug, err)
	}
	return res.DeletedCount, nil
}

// Reseal seals again with the current key every value sealed with the
// previous one, each by compare-and-set on the sealed value it read (a
// value set meanwhile is left as it is). It returns how many it sealed
// again and how many are of a lost key.
func (r Secrets) Reseal(ctx context.Context) (resealed, lost int, err error) {
	if r.sealer == nil {
		return 0, 0, errors.New("reseal secrets: no sealer")
	}
	docs, err := r.find(ctx, bson.D{{Key: "key_id", Value: bson.D{{Key: "$ne", Value: r.sealer.cur.id}}}})
	if err != nil {
		return 0, 0, err
	}
	for _, d := range docs {
		v, err := r.sealer.Open(d.Slug, d.Name, d.Sealed)
		if err != nil {
			lost++
			continue
		}
		s, err := r.sealer.Seal(d.Slug, d.Name, v)
		if err != nil {
			return resealed, lost, err
		}
		res, err := r.c.UpdateOne(ctx,
			bson.D{{Key: "_id", Value: d.ID}, {Key: "key_id", Value: d.Sealed.KeyID}, {Key: "nonce", Value: d.Sealed.Nonce}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "key_id", Value: s.KeyID}, {Key: "nonce", Value: s.Nonce}, {Key: "sealed", Value: s.Box}}}})
		if err != nil {
			return resealed, lost, fmt.Errorf("seal secret %s of %s again: %w", d.Name, d.Slug, err)
		}
		if res.ModifiedCount > 0 {
			resealed++
		}
	}
	return resealed, lost, nil
}

func (r Secrets) find(ctx context.Context, filter bson.D) ([]secretDoc, error) {
	cur, err := r.c.Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	if err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	var docs []secretDoc
	if err := cur.All(ctx, &docs); err != nil {
		return nil, fmt.Errorf("list secrets: %w", err)
	}
	return docs, nil
}
