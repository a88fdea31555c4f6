package platform_test

import (
	"context"
	"maps"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/svc"
	"github.com/gnome-platform/gnome/libs/testenv"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

// ridSecretNotOwner is the secrets exercise's refused call.
const ridSecretNotOwner = "probe-secret-not-owner"

func init() {
	maps.Copy(wantErrors, map[string]apierr.Code{ridSecretNotOwner: apierr.CodeForbidden})
}

// exerciseSecrets calls every secrets endpoint of the upload service as the
// edge does: the owner sets a secret, replaces it, lists and deletes it; a
// stranger is refused. Of every message on the bus meanwhile, only the
// requests that set a value carry it.
func exerciseSecrets(ctx context.Context, t *testing.T, d *svc.Deps) {
	t.Helper()
	const slug, value = "bus-secrets", "sk-bus-0a1b2c3d4e5f"
	now := time.Now().UTC()
	cfg := experiments.Config{Slug: slug, SlugField: slug, Name: slug, OwnerEmail: busAdminEmail, Status: "active", Version: 1,
		Manifest: `{"slug":"bus-secrets"}`, CreatedAt: now, UpdatedAt: now, Seq: 1}
	if _, err := d.Store.Collection(store.ExperimentsConfig).InsertOne(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	var (
		mu   sync.Mutex
		seen []*nats.Msg
	)
	sub, err := d.NC.Subscribe(">", func(m *nats.Msg) { mu.Lock(); seen = append(seen, m); mu.Unlock() })
	if err != nil {
		t.Fatal(err)
	}
	if err := d.NC.Flush(); err != nil {
		t.Fatal(err)
	}

	owner := testenv.Caller(busAdminEmail, "admin")
	if r, err := call(ctx, d.NC, "secrets-set", uploadapi.EndpointSecretSet,
		uploadapi.SecretSet{Slug: slug, Name: "API_KEY", Value: value, Caller: owner}); err != nil || !r.Created {
		t.Fatalf("secrets.set: %+v %v", r, err)
	}
	if r, err := call(ctx, d.NC, "secrets-replace", uploadapi.EndpointSecretSet,
		uploadapi.SecretSet{Slug: slug, Name: "API_KEY", Value: value + "-2", Caller: owner}); err != nil || r.Created {
		t.Fatalf("secrets.set again: %+v %v", r, err)
	}
	_, err = call(ctx, d.NC, ridSecretNotOwner, uploadapi.EndpointSecretSet,
		uploadapi.SecretSet{Slug: slug, Name: "API_KEY", Value: value, Caller: testenv.Caller("stranger@example.com", "developer")})
	wantCode(t, "secrets.set by a stranger", err, apierr.CodeForbidden)
	if l, err := call(ctx, d.NC, "secrets-list", uploadapi.EndpointSecrets,
		uploadapi.SecretsQuery{Slug: slug, Caller: owner}); err != nil || len(l.Secrets) != 1 {
		t.Fatalf("secrets.list: %+v %v", l, err)
	}
	if g, err := call(ctx, d.NC, "secrets-delete", uploadapi.EndpointSecretDelete,
		uploadapi.SecretDelete{Slug: slug, Name: "API_KEY", Caller: owner}); err != nil || g.Name != "API_KEY" {
		t.Fatalf("secrets.delete: %+v %v", g, err)
	}

	if err := d.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	if err := sub.Unsubscribe(); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	sets := 0
	for _, m := range seen {
		if !strings.Contains(string(m.Data), value) {
			continue
		}
		if m.Subject != "gnome.upload.secrets.set" {
			t.Errorf("a message on %s carries the secret's value: %.200s", m.Subject, m.Data)
			continue
		}
		sets++
	}
	if sets != 3 {
		t.Errorf("%d requests to set a secret carried its value, want 3 (the check saw the bus)", sets)
	}
}
