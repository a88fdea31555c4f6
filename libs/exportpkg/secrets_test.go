package exportpkg_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/gnome-platform/gnome/libs/exportapi"
	"github.com/gnome-platform/gnome/libs/exportpkg"
	"github.com/gnome-platform/gnome/libs/store"
)

// Standalone and docker packages list the names of the experiment's
// secrets and hold none of their values, sealed or not; upload-ready ones
// list nothing; a package whose list no platform would write is refused.
func TestSecretNamesOnly(t *testing.T) {
	f := newFixture(t)
	sl, err := store.NewSealer("package-test-secret-key-0123456789abcdef", "")
	if err != nil {
		t.Fatal(err)
	}
	secrets := store.SecretsOf(f.db, sl)
	const value = "sk-export-77aa88bb99cc"
	for _, name := range []string{"VOYAGE_KEY", "API_KEY"} {
		if _, _, err := secrets.Put(ctxT(t), slug, name, value, "dev@example.com", 32); err != nil {
			t.Fatal(err)
		}
	}
	if _, _, err := secrets.Put(ctxT(t), "shop_x", "OTHER_KEY", value, "dev@example.com", 32); err != nil {
		t.Fatal(err)
	}
	for _, typ := range []exportapi.Type{exportapi.Standalone, exportapi.Docker} {
		pkg, sum := write(t, typ, f.src, exportpkg.Options{})
		if !slices.Equal(sum.Meta.Secrets, []string{"API_KEY", "VOYAGE_KEY"}) {
			t.Errorf("%s: export.json lists secrets %v", typ, sum.Meta.Secrets)
		}
		_, files := entries(t, pkg)
		for name, zf := range files {
			if strings.Contains(read(t, zf), value) {
				t.Errorf("%s: entry %s holds a secret's value", typ, name)
			}
		}
		p := open(t, pkg)
		if !slices.Equal(p.Meta.Secrets, []string{"API_KEY", "VOYAGE_KEY"}) {
			t.Errorf("%s: the package read back lists %v", typ, p.Meta.Secrets)
		}
		p.Close()
	}
	_, sum := write(t, exportapi.UploadReady, f.src, exportpkg.Options{})
	if sum.Meta.Secrets != nil {
		t.Errorf("upload-ready lists secrets %v", sum.Meta.Secrets)
	}

	pkg, sum := write(t, exportapi.Standalone, f.src, exportpkg.Options{})
	for name, list := range map[string][]string{
		"a bad name":     {"API_KEY", "lower"},
		"unsorted":       {"VOYAGE_KEY", "API_KEY"},
		"twice":          {"API_KEY", "API_KEY"},
		"too many":       slices.Repeat([]string{"A"}, 33),
		"a path":         {"../../etc/passwd"},
		"an empty name":  {""},
		"a value in it":  {"API_KEY=" + value},
		"a control char": {"API\nKEY"},
	} {
		meta := sum.Meta
		meta.Secrets = list
		mj, _ := json.MarshalIndent(meta, "", "  ")
		bad := rezip(t, pkg, func(n, b string) (string, bool) {
			if n == exportpkg.MetaFile {
				return string(mj) + "\n", true
			}
			return b, true
		})
		if _, err := exportpkg.Open(bytes.NewReader(bad), int64(len(bad))); !errors.Is(err, exportpkg.ErrInvalidPackage) {
			t.Errorf("%s: Open = %v, want ErrInvalidPackage", name, err)
		}
	}
}
