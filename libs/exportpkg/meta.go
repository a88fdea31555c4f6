package exportpkg

import (
	"errors"
	"fmt"
	"math"
	"regexp"
	"time"

	"github.com/gnome-platform/gnome/libs/bundle"
	"github.com/gnome-platform/gnome/libs/exportapi"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

// Type is the kind of package; the export contract defines them.
type Type = exportapi.Type

// FormatVersion is the version of the package format written here; Open
// refuses packages of a later one. Format 2 added the experiment's
// accounts, its actor's key-value store, its study links and their runs
// (accounts, kv, links, runs): a reader of
// format 1 would run such a package without them, so it must refuse it.
const FormatVersion = 2

// Names of the package's own entries.
const (
	MetaFile    = bundle.PlatformDir + "/export.json"
	ConfigFile  = bundle.PlatformDir + "/config.json"
	DataDir     = bundle.PlatformDir + "/data/"
	DataExt     = ".jsonl"
	ReadmeFile  = "README.md"
	Dockerfile  = "Dockerfile"
	ComposeFile = "docker-compose.yml"
	DeployFile  = "DEPLOY.md"
)

// DataFile is the entry of the base collection name's documents.
func DataFile(name string) string { return DataDir + name + DataExt }

// BundleDir is where the bundle's files sit in a package of type t.
func BundleDir(t Type, slug string) string {
	if t == exportapi.UploadReady {
		return ""
	}
	return "experiments/" + slug + "/"
}

// FileName is the name a package is offered for download under.
func FileName(slug string, version int, t Type) string {
	return fmt.Sprintf("%s-v%d-%s.zip", slug, version, t)
}

// Meta is .gnome/export.json; the package comment describes each field.
type Meta struct {
	Format          int          `json:"format"`
	Type            Type         `json:"type"`
	Slug            string       `json:"slug"`
	Name            string       `json:"name"`
	Version         int          `json:"version"`
	Checksum        string       `json:"checksum"`
	CreatedAt       time.Time    `json:"created_at"`
	PlatformVersion string       `json:"platform_version"`
	BundleDir       string       `json:"bundle_dir"`
	Files           int          `json:"files"`
	Collections     []Collection `json:"collections"`
	Documents       int64        `json:"documents"`
	Image           string       `json:"image,omitempty"`
	// Accounts and KV (format 2) are the experiment's accounts and its
	// actor's keys; absent when there are none, and always in upload-ready
	// packages.
	Accounts *Extra `json:"accounts,omitempty"`
	KV       *Extra `json:"kv,omitempty"`
	// Links and Runs (format 2) are the experiment's study links, each
	// with its claim, and their runs; absent as Accounts is.
	Links *Extra `json:"links,omitempty"`
	Runs  *Extra `json:"runs,omitempty"`
	// Secrets are the names of the experiment's secrets, sorted: never
	// their values, which stay on the platform that sealed them. Whoever
	// runs the package sets them again (the standalone banner names
	// them). Absent when there are none, and always in upload-ready
	// packages.
	Secrets []string `json:"secrets,omitempty"`
}

// Collection is one collection's data file.
type Collection struct {
	// Name is the base name: the collection is {slug}_{Name}.
	Name string `json:"name"`
	// Collection is the full name the documents were exported from.
	Collection string `json:"collection"`
	// File is the data file's entry, DataFile(Name).
	File      string `json:"file"`
	Documents int64  `json:"documents"`
	// SHA256 is the hex SHA-256 of the data file as unpacked.
	SHA256 string `json:"sha256"`
}

// ErrInvalidPackage marks a package that Open, ReadCollection or Import
// refuse because it does not follow the format; the bundle's own refusals
// come with their *apierr.Error too.
var ErrInvalidPackage = errors.New("not a valid export package")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalidPackage, fmt.Sprintf(format, args...))
}

var (
	// baseSyntax is the scoped library's syntax of base collection names.
	baseSyntax = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)
	slugSyntax = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)
	hexSHA256  = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

// check refuses a description that does not follow the format.
func (m *Meta) check() error {
	switch {
	case m.Format < 1:
		return invalid("export.json has no format version")
	case m.Format > FormatVersion:
		return invalid("the package has format %d; this platform reads up to %d (upgrade it)", m.Format, FormatVersion)
	}
	if _, err := exportapi.ParseType(string(m.Type)); err != nil {
		return invalid("export.json: unknown type %q", m.Type)
	}
	if !slugSyntax.MatchString(m.Slug) {
		return invalid("export.json: slug %q is not a slug", m.Slug)
	}
	if m.BundleDir != BundleDir(m.Type, m.Slug) {
		return invalid("export.json: bundle_dir %q, want %q for a %s package", m.BundleDir, BundleDir(m.Type, m.Slug), m.Type)
	}
	if !m.Type.HasData() && len(m.Collections) > 0 {
		return invalid("export.json: an upload-ready package lists collections")
	}
	people := m.Accounts != nil || m.KV != nil || m.Links != nil || m.Runs != nil
	if !m.Type.HasData() && people {
		return invalid("export.json: an upload-ready package lists accounts, keys, study links or runs")
	}
	if m.Format < 2 && people {
		return invalid("export.json: a package of format %d lists accounts, keys, study links or runs", m.Format)
	}
	if m.Runs != nil && m.Links == nil {
		return invalid("export.json lists runs but no study links")
	}
	if err := checkExtra("accounts", m.Accounts, AccountsFile, MaxAccounts); err != nil {
		return err
	}
	if err := checkExtra("kv", m.KV, KVFile, MaxKVKeys); err != nil {
		return err
	}
	if err := checkExtra("links", m.Links, LinksFile, MaxLinks); err != nil {
		return err
	}
	if err := checkExtra("runs", m.Runs, RunsFile, MaxRuns); err != nil {
		return err
	}
	if err := checkSecrets(m); err != nil {
		return err
	}
	if len(m.Collections) > MaxCollections {
		return invalid("export.json lists %d collections, over the limit of %d", len(m.Collections), MaxCollections)
	}
	seen := make(map[string]bool, len(m.Collections))
	var total int64
	for _, c := range m.Collections {
		switch {
		case !baseSyntax.MatchString(c.Name):
			return invalid("export.json: collection name %q is not a base name", c.Name)
		case seen[c.Name]:
			return invalid("export.json lists collection %q twice", c.Name)
		case c.File != DataFile(c.Name):
			return invalid("export.json: collection %q has file %q, want %q", c.Name, c.File, DataFile(c.Name))
		case c.Documents < 0 || c.Documents > math.MaxInt64-total:
			return invalid("export.json: collection %q has %d documents", c.Name, c.Documents)
		case !hexSHA256.MatchString(c.SHA256):
			return invalid("export.json: collection %q has no valid sha256", c.Name)
		}
		seen[c.Name] = true
		total += c.Documents
	}
	if total != m.Documents {
		return invalid("export.json counts %d documents but its collections %d", m.Documents, total)
	}
	return nil
}

// checkSecrets refuses a list of secret names that no platform would have
// written: in an upload-ready package, too long, a name out of syntax, or
// out of order.
func checkSecrets(m *Meta) error {
	switch {
	case len(m.Secrets) == 0:
		return nil
	case !m.Type.HasData():
		return invalid("export.json: an upload-ready package lists secrets")
	case len(m.Secrets) > uploadapi.MaxSecrets:
		return invalid("export.json lists %d secrets, over the limit of %d", len(m.Secrets), uploadapi.MaxSecrets)
	}
	for i, name := range m.Secrets {
		if !uploadapi.SecretNameSyntax.MatchString(name) {
			return invalid("export.json: secret name %q is not a secret's name", name)
		}
		if i > 0 && m.Secrets[i-1] >= name {
			return invalid("export.json: secret names are not sorted and unique")
		}
	}
	return nil
}
