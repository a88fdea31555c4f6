package exportpkg

import (
	"archive/zip"
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strings"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gnome-platform/gnome/libs/bundle"
	"github.com/gnome-platform/gnome/libs/store"
)

// Entries of format 2: the experiment's accounts and its actor's key-value
// store, in standalone and docker packages only.
const (
	AccountsFile = bundle.PlatformDir + "/accounts.jsonl"
	KVFile       = bundle.PlatformDir + "/kv.jsonl"
)

// Limits of the key-value store, as the actor worker enforces them
// (services/actorworker/hostops.go): a package holds nothing a running
// actor could not have put.
const (
	MaxKVValue = 64 << 10
	// MaxAccounts and MaxKVKeys bound what one package carries, so that a
	// hostile export.json cannot make an import run without end.
	MaxAccounts = 1_000_000
	MaxKVKeys   = 1_000_000
)

// KVKeySyntax is the syntax of an actor's key.
var KVKeySyntax = regexp.MustCompile(`^[A-Za-z0-9_.=-]{1,128}$`)

// KVPrefix is where an experiment's keys sit in the actor_kv bucket: each
// key is stored as "<slug>.<key in base64url>" (a key may hold dots).
func KVPrefix(slug string) string { return slug + "." }

// KVBucketKey is the bucket key of an experiment's key.
func KVBucketKey(slug, key string) string {
	return KVPrefix(slug) + base64.RawURLEncoding.EncodeToString([]byte(key))
}

// KVKeyOf is the actor's key of a bucket key of slug; ok is false for a key
// of another experiment or not made by KVBucketKey.
func KVKeyOf(slug, bucketKey string) (string, bool) {
	p := KVPrefix(slug)
	if len(bucketKey) <= len(p) || bucketKey[:len(p)] != p {
		return "", false
	}
	k, err := base64.RawURLEncoding.DecodeString(bucketKey[len(p):])
	if err != nil || !KVKeySyntax.Match(k) {
		return "", false
	}
	return string(k), true
}

// KVStore is the actor key-value store as a package needs it: Each calls fn
// with every key of slug's experiment and its value (bucket keys, as
// KVBucketKey makes them); Create stores a key unless it holds a value
// already (created false then). Values are at most MaxKVValue bytes.
type KVStore interface {
	Each(ctx context.Context, slug string, fn func(bucketKey string, value []byte) error) error
	Create(ctx context.Context, bucketKey string, value []byte) (created bool, err error)
}

// Extra is an entry of the package besides the bundle and collections.
type Extra struct {
	File    string `json:"file"`
	Entries int64  `json:"entries"`
	SHA256  string `json:"sha256"`
}

// kvLine is one line of kv.jsonl.
type kvLine struct {
	Key   string `json:"key"`
	Value []byte `json:"value"` // base64, as encoding/json writes []byte
}

// hashingEntry is a deflated entry whose bytes are hashed and counted.
type hashingEntry struct {
	w   io.Writer
	sum interface{ Sum([]byte) []byte }
	n   int64
}

func (x *writer) entry(name string) (*hashingEntry, error) {
	h := &zip.FileHeader{Name: name, Method: zip.Deflate, Modified: x.opts.CreatedAt}
	h.SetMode(0o644)
	fw, err := x.zw.CreateHeader(h)
	if err != nil {
		return nil, err
	}
	sum := sha256.New()
	return &hashingEntry{w: io.MultiWriter(fw, sum), sum: sum}, nil
}

func (e *hashingEntry) extra(name string) *Extra {
	return &Extra{File: name, Entries: e.n, SHA256: hex.EncodeToString(e.sum.Sum(nil))}
}

// writeAccounts exports the experiment's accounts as they are stored
// (password hashes, disabled flags, IDs and token versions), one canonical
// Extended JSON document a line. No entry when there are none.
func (x *writer) writeAccounts() error {
	coll := x.src.DB.Collection(store.ExperimentUsersCollection)
	cur, err := coll.Find(x.ctx, bson.D{{Key: "slug", Value: x.slug}},
		options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetBatchSize(500))
	if err != nil {
		return fmt.Errorf("find accounts: %w", err)
	}
	defer cur.Close(context.WithoutCancel(x.ctx))
	var e *hashingEntry
	for cur.Next(x.ctx) {
		if e == nil {
			if e, err = x.entry(AccountsFile); err != nil {
				return err
			}
		}
		line, err := bson.MarshalExtJSON(cur.Current, true, false)
		if err != nil {
			return fmt.Errorf("encode an account: %w", err)
		}
		if _, err := e.w.Write(append(line, '\n')); err != nil {
			return err
		}
		e.n++
	}
	if err := cur.Err(); err != nil {
		return fmt.Errorf("read accounts: %w", err)
	}
	if e != nil {
		x.meta.Accounts = e.extra(AccountsFile)
	}
	return nil
}

// writeKV exports the experiment's keys with the actor's own key names, so
// that the package does not depend on how the bucket encodes them.
func (x *writer) writeKV() error {
	if x.src.KV == nil {
		return nil
	}
	var e *hashingEntry
	err := x.src.KV.Each(x.ctx, x.slug, func(bucketKey string, value []byte) error {
		key, ok := KVKeyOf(x.slug, bucketKey)
		if !ok || len(value) > MaxKVValue {
			return nil // not a key an actor of this experiment made
		}
		if e == nil {
			var err error
			if e, err = x.entry(KVFile); err != nil {
				return err
			}
		}
		line, err := json.Marshal(kvLine{Key: key, Value: value})
		if err != nil {
			return err
		}
		if _, err := e.w.Write(append(line, '\n')); err != nil {
			return err
		}
		e.n++
		return nil
	})
	if err != nil {
		return fmt.Errorf("export the key-value store: %w", err)
	}
	if e != nil {
		x.meta.KV = e.extra(KVFile)
	}
	return nil
}

// checkExtra checks an Extra of export.json.
func checkExtra(what string, e *Extra, file string, max int64) error {
	switch {
	case e == nil:
		return nil
	case e.File != file:
		return invalid("export.json: %s has file %q, want %q", what, e.File, file)
	case e.Entries < 1 || e.Entries > max:
		return invalid("export.json: %s counts %d entries", what, e.Entries)
	case !hexSHA256.MatchString(e.SHA256):
		return invalid("export.json: %s has no valid sha256", what)
	}
	return nil
}

// readLines calls fn with each line of an Extra's file and checks its count
// and SHA-256.
func (p *Package) readLines(e *Extra, fn func(line []byte) error) error {
	rc, err := p.data.open(e.File)
	if err != nil {
		return invalid("%s: %v", e.File, err)
	}
	defer rc.Close()
	sum := sha256.New()
	br := bufio.NewReaderSize(io.TeeReader(rc, sum), 64<<10)
	var n int64
	var line []byte
	for lineNo := 1; ; lineNo++ {
		line, err = readLine(br, line[:0])
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return invalid("%s line %d: %v", e.File, lineNo, err)
		}
		text := bytes.TrimRight(line, "\r\n")
		if len(text) == 0 {
			continue
		}
		if n == e.Entries {
			return invalid("%s holds more than the %d entries export.json counts", e.File, e.Entries)
		}
		if err := fn(text); err != nil {
			if errors.Is(err, ErrInvalidPackage) {
				return err
			}
			return invalid("%s line %d: %v", e.File, lineNo, err)
		}
		n++
	}
	if n != e.Entries {
		return invalid("%s holds %d entries, export.json counts %d", e.File, n, e.Entries)
	}
	if got := hex.EncodeToString(sum.Sum(nil)); got != e.SHA256 {
		return invalid("%s has SHA-256 %s, export.json says %s", e.File, got, e.SHA256)
	}
	return nil
}

// accountFields are the fields an account may have, those of
// store.ExpAccount: anything else (a plain "password" above all) is refused
// rather than imported. They are read from the struct so that a field added
// to accounts travels without a change here.
var accountFields = func() map[string]bool {
	fields := map[string]bool{}
	t := reflect.TypeFor[store.ExpAccount]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("bson"), ",")
		if name != "" && name != "-" {
			fields[name] = true
		}
	}
	return fields
}()

// ReadAccounts calls fn with each account of the package (none for
// packages of format 1 or without accounts). An account of another
// experiment, without an ID, without a password hash (but a demo or linked
// account, which signs in without one), whose _id is not its slug and
// email, or with fields an account does not have, is refused.
func (p *Package) ReadAccounts(fn func(a store.ExpAccount, raw bson.D) error) error {
	if p.Meta.Accounts == nil {
		return nil
	}
	var stop error
	err := p.readLines(p.Meta.Accounts, func(line []byte) error {
		if err := checkJSON(line); err != nil {
			return err
		}
		var d bson.D
		if err := bson.UnmarshalExtJSON(line, false, &d); err != nil {
			return fmt.Errorf("not an Extended JSON document: %w", err)
		}
		for _, el := range d {
			if !accountFields[el.Key] {
				return fmt.Errorf("an account with field %q", el.Key)
			}
		}
		raw, err := bson.Marshal(d)
		if err != nil {
			return err
		}
		var a store.ExpAccount
		if err := bson.Unmarshal(raw, &a); err != nil {
			return fmt.Errorf("not an account: %w", err)
		}
		switch {
		case a.Slug != p.Meta.Slug:
			return fmt.Errorf("an account of experiment %q, not %q", a.Slug, p.Meta.Slug)
		case a.Email == "" || a.Key != a.Slug+"/"+a.Email:
			return fmt.Errorf("an account whose _id %q is not its slug and email", a.Key)
		case a.UID == "":
			return fmt.Errorf("account %q has no ID", a.Email)
		case a.PasswordHash == "" && a.Kind == "":
			// Only demo and linked accounts sign in without a password.
			return fmt.Errorf("account %q has no password hash", a.Email)
		}
		if err := fn(a, d); err != nil {
			stop = err
			return err
		}
		return nil
	})
	if stop != nil { // fn's own error, which readLines would take for a refusal
		return stop
	}
	return err
}

// ReadKV calls fn with each key of the actor's store in the package, with
// the actor's own key name (none for packages without).
func (p *Package) ReadKV(fn func(key string, value []byte) error) error {
	if p.Meta.KV == nil {
		return nil
	}
	var stop error
	err := p.readLines(p.Meta.KV, func(line []byte) error {
		var l kvLine
		dec := json.NewDecoder(bytes.NewReader(line))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			return fmt.Errorf("not a key and value: %w", err)
		}
		switch {
		case !KVKeySyntax.MatchString(l.Key):
			return fmt.Errorf("key %q is not 1 to 128 characters of A-Z a-z 0-9 _ . = -", l.Key)
		case len(l.Value) > MaxKVValue:
			return fmt.Errorf("key %q has a value of %d bytes, over the limit of %d", l.Key, len(l.Value), MaxKVValue)
		}
		if err := fn(l.Key, l.Value); err != nil {
			stop = err
			return err
		}
		return nil
	})
	if stop != nil { // fn's own error, which readLines would take for a refusal
		return stop
	}
	return err
}

// importAccounts inserts the package's accounts that are not in db (by
// _id, or by their ID in the experiment), whatever the mode: an account
// changed or deleted since (a new password, a disabled flag) is the
// operator's, and a package must not undo it. Existing counts those left.
func importAccounts(ctx context.Context, db *mongo.Database, p *Package) (inserted, existing int64, err error) {
	coll := db.Collection(store.ExperimentUsersCollection)
	err = p.ReadAccounts(func(_ store.ExpAccount, d bson.D) error {
		_, err := coll.InsertOne(ctx, d)
		switch {
		case mongo.IsDuplicateKeyError(err):
			existing++
		case err != nil:
			return fmt.Errorf("import an account: %w", err)
		default:
			inserted++
		}
		return nil
	})
	return inserted, existing, err
}

// importKV creates the package's keys that the store does not hold.
func importKV(ctx context.Context, kv KVStore, p *Package) (inserted, existing int64, err error) {
	err = p.ReadKV(func(key string, value []byte) error {
		created, err := kv.Create(ctx, KVBucketKey(p.Meta.Slug, key), value)
		if err != nil {
			return fmt.Errorf("import key %q: %w", key, err)
		}
		if created {
			inserted++
		} else {
			existing++
		}
		return nil
	})
	return inserted, existing, err
}
