package exportstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3Config configures S3-compatible storage.
type S3Config struct {
	// Endpoint is a URL ("https://s3.us-west-004.backblazeb2.com",
	// "http://127.0.0.1:7070") or a bare host[:port], which means https.
	Endpoint string
	// Region; empty: taken from a Backblaze B2 endpoint
	// (s3.<region>.backblazeb2.com), else found by the client (AWS host
	// names, or one GetBucketLocation call per bucket).
	Region               string
	AccessKey, SecretKey string
	Bucket               string
	// PartSize is the size of each multipart part, hence of the buffer one
	// Put holds; default DefaultPartSize, at least 5 MiB (the S3 minimum).
	// An object can have 10,000 parts: 160 GiB at 16 MiB.
	PartSize int64
	// PresignTTL is how long DownloadURL links last when no ttl is given;
	// default DefaultPresignTTL, at most 7 days (the SigV4 maximum).
	PresignTTL time.Duration
}

// Defaults of S3Config.
const (
	DefaultPartSize   = 16 << 20
	DefaultPresignTTL = 15 * time.Minute
	minPartSize       = 5 << 20
	maxParts          = 10000
	maxPresignTTL     = 7 * 24 * time.Hour
)

// S3 keeps objects in a bucket of S3-compatible storage.
//
// How a partial object stays invisible: Put reads up to PartSize bytes.
// If the reader ends within them, it stores them with one PUT, which S3
// makes visible only once complete. Otherwise it starts a multipart
// upload, sends one part per PartSize bytes read, and completes the upload
// after the reader's EOF: S3 shows no object until
// CompleteMultipartUpload, which replaces the key's object as a whole. If
// the reader fails, ctx ends or the storage refuses a part, Put aborts the
// upload (with a fresh 10 s context, so a cancelled job cleans up too) and
// S3 deletes its parts. If the process dies, the upload stays incomplete
// and invisible, its parts kept (and billed) until a lifecycle rule
// cancels it (B2: daysFromStartingToCancelingUnfinishedLargeFiles; S3:
// AbortIncompleteMultipartUpload): set one on the bucket.
//
// Memory: a Put holds one part buffer (PartSize: 16 MiB by default) and
// the HTTP client's small buffers: its peak is about PartSize, whatever the
// object's size. Open streams the response body.
type S3 struct {
	core       minio.Core
	bucket     string
	host       string
	partSize   int64
	presignTTL time.Duration
}

// NewS3 builds the client; it does no network I/O (see Ping).
func NewS3(cfg S3Config) (*S3, error) {
	if cfg.AccessKey == "" || cfg.SecretKey == "" || cfg.Bucket == "" {
		return nil, errors.New("exportstore: S3 needs an access key, a secret key and a bucket")
	}
	host, secure, err := parseEndpoint(cfg.Endpoint)
	if err != nil {
		return nil, err
	}
	if cfg.PartSize == 0 {
		cfg.PartSize = DefaultPartSize
	}
	if cfg.PartSize < minPartSize {
		return nil, fmt.Errorf("exportstore: S3 part size %d is below the 5 MiB minimum", cfg.PartSize)
	}
	if cfg.PresignTTL == 0 {
		cfg.PresignTTL = DefaultPresignTTL
	}
	if cfg.PresignTTL < time.Second || cfg.PresignTTL > maxPresignTTL {
		return nil, fmt.Errorf("exportstore: presign TTL %s is outside 1s..7 days", cfg.PresignTTL)
	}
	if cfg.Region == "" {
		cfg.Region = b2Region(host)
	}
	client, err := minio.New(host, &minio.Options{
		Creds:  credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure: secure,
		Region: cfg.Region,
	})
	if err != nil {
		return nil, fmt.Errorf("exportstore: S3 client: %w", err)
	}
	return &S3{core: minio.Core{Client: client}, bucket: cfg.Bucket, host: host, partSize: cfg.PartSize, presignTTL: cfg.PresignTTL}, nil
}

// parseEndpoint splits an endpoint given as a URL or a bare host[:port]
// into the host and whether to use TLS (a bare host means https).
func parseEndpoint(endpoint string) (host string, secure bool, err error) {
	e := strings.TrimSpace(endpoint)
	if e == "" {
		return "", false, errors.New("exportstore: S3 endpoint is empty (B2_ENDPOINT_URL)")
	}
	if !strings.Contains(e, "://") {
		e = "https://" + e
	}
	u, err := url.Parse(e)
	if err != nil {
		return "", false, fmt.Errorf("exportstore: S3 endpoint %q: %w", endpoint, err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return "", false, fmt.Errorf("exportstore: S3 endpoint %q: scheme must be http or https", endpoint)
	case u.Host == "" || u.User != nil || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "":
		return "", false, fmt.Errorf("exportstore: S3 endpoint %q: want scheme://host[:port] or host[:port]", endpoint)
	}
	return u.Host, u.Scheme == "https", nil
}

var b2Host = regexp.MustCompile(`^s3\.([a-z0-9-]+)\.backblazeb2\.com(:\d+)?$`)

func b2Region(host string) string {
	if m := b2Host.FindStringSubmatch(strings.ToLower(host)); m != nil {
		return m[1]
	}
	return ""
}

// Name implements Store.
func (s *S3) Name() string { return "s3:" + s.host + "/" + s.bucket }

// Ping implements Store.
func (s *S3) Ping(ctx context.Context) error {
	ok, err := s.core.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("exportstore: %s: %w", s.Name(), err)
	}
	if !ok {
		return fmt.Errorf("exportstore: %s: bucket does not exist", s.Name())
	}
	return nil
}

// Put implements Store.
func (s *S3) Put(ctx context.Context, key string, r io.Reader) (Object, error) {
	if err := checkKey(key); err != nil {
		return Object{}, err
	}
	ct := mime.TypeByExtension(path.Ext(key))
	if ct == "" {
		ct = "application/octet-stream"
	}
	opts := minio.PutObjectOptions{ContentType: ct}
	buf := make([]byte, s.partSize)
	n, rerr := io.ReadFull(r, buf)
	if rerr != nil && rerr != io.EOF && rerr != io.ErrUnexpectedEOF {
		return Object{}, fmt.Errorf("exportstore: put %q: %w", key, rerr)
	}
	if rerr != nil {
		// The whole object fits in one part: a single PUT, which S3 makes
		// visible only once complete.
		info, err := s.core.PutObject(ctx, s.bucket, key, bytes.NewReader(buf[:n]), int64(n), "", "", opts)
		if err != nil {
			return Object{}, s.err("put", key, err)
		}
		return s.object(key, int64(n), info), nil
	}

	id, err := s.core.NewMultipartUpload(ctx, s.bucket, key, opts)
	if err != nil {
		return Object{}, s.err("put", key, err)
	}
	fail := func(err error) (Object, error) {
		// Drop the parts, even when ctx has ended; the upload is invisible
		// whatever happens here.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		_ = s.core.AbortMultipartUpload(actx, s.bucket, key, id)
		return Object{}, s.err("put", key, err)
	}
	var parts []minio.CompletePart
	var size int64
	for n > 0 {
		if len(parts) == maxParts {
			return fail(fmt.Errorf("larger than %d parts of %d bytes", maxParts, s.partSize))
		}
		p, err := s.core.PutObjectPart(ctx, s.bucket, key, id, len(parts)+1, bytes.NewReader(buf[:n]), int64(n), minio.PutObjectPartOptions{})
		if err != nil {
			return fail(err)
		}
		parts = append(parts, minio.CompletePart{PartNumber: len(parts) + 1, ETag: p.ETag})
		size += int64(n)
		if rerr == io.ErrUnexpectedEOF {
			break
		}
		if n, rerr = io.ReadFull(r, buf); rerr != nil && rerr != io.EOF && rerr != io.ErrUnexpectedEOF {
			return fail(rerr)
		}
	}
	info, err := s.core.CompleteMultipartUpload(ctx, s.bucket, key, id, parts, opts)
	if err != nil {
		return fail(err)
	}
	return s.object(key, size, info), nil
}

func (s *S3) object(key string, size int64, info minio.UploadInfo) Object {
	mod := info.LastModified
	if mod.IsZero() {
		mod = time.Now().UTC()
	}
	return Object{Key: key, Size: size, ModTime: mod}
}

// Stat implements Store.
func (s *S3) Stat(ctx context.Context, key string) (Object, error) {
	info, err := s.core.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return Object{}, s.err("stat", key, err)
	}
	return Object{Key: key, Size: info.Size, ModTime: info.LastModified}, nil
}

// Open implements Store.
func (s *S3) Open(ctx context.Context, key string) (io.ReadCloser, Object, error) {
	obj, err := s.core.Client.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, Object{}, s.err("open", key, err)
	}
	// The first call sends the GET; Stat reads its response headers.
	info, err := obj.Stat()
	if err != nil {
		obj.Close()
		return nil, Object{}, s.err("open", key, err)
	}
	return obj, Object{Key: key, Size: info.Size, ModTime: info.LastModified}, nil
}

// Delete implements Store.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := s.core.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		if isNotFound(err) {
			return nil
		}
		return s.err("delete", key, err)
	}
	return nil
}

// DownloadURL implements Store: a presigned GET link, valid for l.TTL
// (default S3Config.PresignTTL); the storage refuses it (403) afterwards.
// The file name and type ride in the signed response-content-disposition
// and response-content-type parameters, which S3 echoes as headers.
func (s *S3) DownloadURL(ctx context.Context, key string, l Link) (string, bool, error) {
	if err := checkKey(key); err != nil {
		return "", false, err
	}
	ttl := l.TTL
	if ttl <= 0 {
		ttl = s.presignTTL
	}
	if ttl < time.Second || ttl > maxPresignTTL {
		return "", false, fmt.Errorf("exportstore: link lifetime %s is outside 1s..7 days", ttl)
	}
	params := url.Values{}
	if l.FileName != "" {
		params.Set("response-content-disposition", Attachment(l.FileName))
	}
	if l.ContentType != "" {
		params.Set("response-content-type", l.ContentType)
	}
	u, err := s.core.PresignedGetObject(ctx, s.bucket, key, ttl, params)
	if err != nil {
		return "", false, s.err("presign", key, err)
	}
	return u.String(), true, nil
}

// Attachment is the Content-Disposition value that saves a download as
// name: a plain ASCII fallback (quotes, backslashes and controls dropped,
// other non-ASCII as "_") and, when name is not plain ASCII, its UTF-8
// form as RFC 6266's filename*.
func Attachment(name string) string {
	var ascii strings.Builder
	plain := true
	for _, r := range name {
		switch {
		case r == '"' || r == '\\' || r < 0x20 || r == 0x7f:
			plain = false
		case r > 0x7e:
			plain = false
			ascii.WriteByte('_')
		default:
			ascii.WriteRune(r)
		}
	}
	v := `attachment; filename="` + ascii.String() + `"`
	if !plain {
		v += "; filename*=UTF-8''" + extValue(name)
	}
	return v
}

// extValue percent-encodes s as RFC 8187's value-chars: every byte but
// attr-char.
func extValue(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("!#$&+-.^_`|~", c) >= 0 {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hex[c>>4])
		b.WriteByte(hex[c&15])
	}
	return b.String()
}

func isNotFound(err error) bool {
	resp := minio.ToErrorResponse(err)
	return resp.Code == minio.NoSuchKey || (resp.StatusCode == http.StatusNotFound && resp.Code != minio.NoSuchBucket)
}

func (s *S3) err(op, key string, err error) error {
	if isNotFound(err) {
		return fmt.Errorf("exportstore: %s %q: %w", op, key, ErrNotFound)
	}
	return fmt.Errorf("exportstore: %s %s %q: %w", op, s.Name(), key, err)
}
