// Package exportstore is where export packages are kept and served from: a
// JetStream object store by default, or S3-compatible storage (Backblaze B2,
// MinIO, AWS S3) when the B2_* settings are given.
//
// The contract every implementation keeps (storetest states it as tests):
//   - Put streams its reader into the store; memory does not grow with the
//     object's size (each backend documents its peak);
//   - an object becomes visible under its key only once complete: after a
//     failed Put, a cancelled one or a killed process, Stat and Open find
//     what was there before (nothing, or the previous object), never a
//     partial one;
//   - Put over an existing key replaces it as a whole;
//   - Stat and Open of a missing key give ErrNotFound; Delete of a missing
//     key is not an error;
//   - DownloadURL gives a presigned link where the backend has them.
package exportstore

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/config"
)

// Link describes a download link. The storage answers the link with the
// file name and type given here, so a browser saves "clicks-v3.zip", not
// the storage key.
type Link struct {
	// TTL is how long the link works; <= 0: the backend's default.
	TTL time.Duration
	// FileName is the name the browser saves the file as (Content-
	// Disposition: attachment); empty: the storage's default.
	FileName string
	// ContentType is the answer's media type; empty: the stored one.
	ContentType string
}

// Store keeps export packages by key (a path such as "exports/<id>.zip").
// Its methods are safe for concurrent use; concurrent Puts of one key are
// not coordinated (the last to complete wins).
type Store interface {
	// Put stores r's bytes under key, reading r to EOF. The object is
	// visible only once complete: if r fails, ctx ends or the process dies
	// midway, key keeps what it had before (see each backend for how), and
	// the error returned wraps r's error or ctx's.
	Put(ctx context.Context, key string, r io.Reader) (Object, error)
	// Open returns the object's content. The reader is bound to ctx: it
	// fails once ctx ends. The caller closes it.
	Open(ctx context.Context, key string) (io.ReadCloser, Object, error)
	// Stat describes the object, or gives ErrNotFound.
	Stat(ctx context.Context, key string) (Object, error)
	// Delete removes the object; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
	// DownloadURL returns a link that downloads the object without
	// credentials as l describes, with ok true, where the backend has such
	// links (S3). Without them (the object store), it returns ok false and
	// the caller streams the object itself through Open. It does not check
	// that the object exists.
	DownloadURL(ctx context.Context, key string, l Link) (url string, ok bool, err error)
	// Name describes the backend for logs and health reports, without
	// credentials.
	Name() string
	// Ping checks that the storage answers and its bucket exists.
	Ping(ctx context.Context) error
}

// Object describes a stored object.
type Object struct {
	Key     string
	Size    int64
	ModTime time.Time
}

// ErrNotFound is returned (possibly wrapped) by Stat and Open when no
// complete object is stored under the key. It is a not_found API error, so
// apierr.From renders it as 404.
var ErrNotFound = apierr.New(apierr.CodeNotFound, "no such export file")

// FromConfig picks the backend: S3-compatible storage when b2 is enabled,
// else the "exports" JetStream object store through js. Neither does
// network I/O here; use Ping to check the storage. Settings that are only
// partly given are an error rather than a silent fall-back to the object
// store.
func FromConfig(b2 config.B2Config, js jetstream.JetStream) (Store, error) {
	if b2.Enabled() {
		return NewS3(S3Config{Endpoint: b2.Endpoint, AccessKey: b2.KeyID, SecretKey: b2.Key, Bucket: b2.Bucket})
	}
	// Credentials or a bucket without the rest mean S3 was meant: refuse
	// rather than fall back to the object store. An endpoint alone (a
	// deployment default) does not.
	var missing []string
	if b2.KeyID == "" {
		missing = append(missing, "B2_APPLICATION_KEY_ID (or B2_ACCESS_KEY_ID)")
	}
	if b2.Key == "" {
		missing = append(missing, "B2_APPLICATION_KEY (or B2_SECRET_ACCESS_KEY)")
	}
	if b2.Bucket == "" {
		missing = append(missing, "B2_BUCKET_NAME")
	}
	if len(missing) < 3 {
		return nil, fmt.Errorf("exportstore: S3 storage is partly configured; missing %s", strings.Join(missing, ", "))
	}
	if js == nil {
		return nil, errors.New("exportstore: no JetStream for the object store")
	}
	return NewObjectStore(js, bus.ObjectExports), nil
}

func checkKey(key string) error {
	if key == "" || strings.HasPrefix(key, "/") || len(key) > 1024 {
		return fmt.Errorf("exportstore: invalid key %q: must be 1 to 1024 bytes, not starting with /", key)
	}
	return nil
}
