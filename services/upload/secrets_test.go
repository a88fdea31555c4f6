package upload_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/testenv"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

const secretValue = "sk-test-9f8e7d6c5b4a"

// Only the owner and admins set, list and delete an experiment's secrets;
// every refusal changes nothing; no reply, audit entry or stored document
// holds a value.
func TestSecretsAccessAndRefusals(t *testing.T) {
	w := newWorld(t)
	w.start()
	ctx := ctxT(t)
	w.upload(ann, "alpha", nil)
	w.upload(bob, "beta", nil)

	res, err := w.client.SetSecret(ctx, uploadapi.SecretSet{Slug: "alpha", Name: "API_KEY", Value: secretValue, Caller: ann})
	if err != nil || !res.Created || res.Secret.Name != "API_KEY" || res.Secret.Size != len(secretValue) || res.Secret.CreatedBy != ann.Email || res.Secret.Key != uploadapi.SecretKeyCurrent {
		t.Fatalf("owner sets: %+v, %v", res, err)
	}
	res, err = w.client.SetSecret(ctx, uploadapi.SecretSet{Slug: "alpha", Name: "API_KEY", Value: secretValue + "-2", Caller: admin})
	if err != nil || res.Created || res.Secret.UpdatedBy != admin.Email || res.Secret.CreatedBy != ann.Email {
		t.Fatalf("admin replaces: %+v, %v", res, err)
	}

	long := strings.Repeat("x", uploadapi.MaxSecretValue+1)
	for _, c := range []struct {
		name string
		req  uploadapi.SecretSet
		code apierr.Code
	}{
		{"another developer", uploadapi.SecretSet{Slug: "alpha", Name: "OTHER", Value: "v", Caller: bob}, apierr.CodeForbidden},
		{"another developer replacing", uploadapi.SecretSet{Slug: "alpha", Name: "API_KEY", Value: "v", Caller: bob}, apierr.CodeForbidden},
		{"no caller", uploadapi.SecretSet{Slug: "alpha", Name: "OTHER", Value: "v"}, apierr.CodeUnauthenticated},
		{"a message claiming admin, its token not", uploadapi.SecretSet{Slug: "alpha", Name: "OTHER", Value: "v",
			Caller: uploadapi.Caller{Email: "bob@example.com", Roles: []string{"admin"}, IsAdmin: true, Token: bob.Token}}, apierr.CodeForbidden},
		{"a message naming the owner with another's token", uploadapi.SecretSet{Slug: "alpha", Name: "OTHER", Value: "v",
			Caller: uploadapi.Caller{Email: ann.Email, Roles: ann.Roles, Token: bob.Token}}, apierr.CodeForbidden},
		{"unknown experiment", uploadapi.SecretSet{Slug: "nowhere", Name: "OTHER", Value: "v", Caller: admin}, apierr.CodeNotFound},
		{"a slug that is no slug", uploadapi.SecretSet{Slug: "../alpha", Name: "OTHER", Value: "v", Caller: admin}, apierr.CodeNotFound},
		{"lower case", uploadapi.SecretSet{Slug: "alpha", Name: "api_key", Value: "v", Caller: ann}, apierr.CodeValidationFailed},
		{"empty name", uploadapi.SecretSet{Slug: "alpha", Name: "", Value: "v", Caller: ann}, apierr.CodeValidationFailed},
		{"leading digit", uploadapi.SecretSet{Slug: "alpha", Name: "1KEY", Value: "v", Caller: ann}, apierr.CodeValidationFailed},
		{"leading underscore", uploadapi.SecretSet{Slug: "alpha", Name: "_KEY", Value: "v", Caller: ann}, apierr.CodeValidationFailed},
		{"65 characters", uploadapi.SecretSet{Slug: "alpha", Name: "K" + strings.Repeat("E", 64), Value: "v", Caller: ann}, apierr.CodeValidationFailed},
		{"a dot", uploadapi.SecretSet{Slug: "alpha", Name: "API.KEY", Value: "v", Caller: ann}, apierr.CodeValidationFailed},
		{"a slash", uploadapi.SecretSet{Slug: "alpha", Name: "../beta/API_KEY", Value: "v", Caller: ann}, apierr.CodeValidationFailed},
		{"a NUL", uploadapi.SecretSet{Slug: "alpha", Name: "API\x00KEY", Value: "v", Caller: ann}, apierr.CodeValidationFailed},
		{"a trailing newline", uploadapi.SecretSet{Slug: "alpha", Name: "API_KEY\n", Value: "v", Caller: ann}, apierr.CodeValidationFailed},
		{"non-ASCII", uploadapi.SecretSet{Slug: "alpha", Name: "KÉY", Value: "v", Caller: ann}, apierr.CodeValidationFailed},
		{"an operator", uploadapi.SecretSet{Slug: "alpha", Name: "$where", Value: "v", Caller: ann}, apierr.CodeValidationFailed},
		{"empty value", uploadapi.SecretSet{Slug: "alpha", Name: "OTHER", Value: "", Caller: ann}, apierr.CodeValidationFailed},
		{"value over the limit", uploadapi.SecretSet{Slug: "alpha", Name: "OTHER", Value: long, Caller: ann}, apierr.CodePayloadTooLarge},
	} {
		_, err := w.client.SetSecret(ctx, c.req)
		wantCode(t, c.name, err, c.code)
	}
	if n := w.count(store.ExperimentSecrets, bson.D{}); n != 1 {
		t.Fatalf("refused requests left %d secrets, want 1", n)
	}
	if got, _, err := w.d.Store.Secrets(sealerOf(t, testenv.SecretKey, "")).Reveal(ctx, "alpha", "API_KEY"); err != nil || got != secretValue+"-2" {
		t.Fatalf("the value after refusals = %q, %v", got, err)
	}
	// The limit's edge: exactly MaxSecretValue bytes is accepted.
	if _, err := w.client.SetSecret(ctx, uploadapi.SecretSet{Slug: "alpha", Name: "EDGE", Value: long[1:], Caller: ann}); err != nil {
		t.Fatalf("a value of exactly the limit: %v", err)
	}

	// Listing: owner and admin; names and sizes, no values.
	list, err := w.client.ListSecrets(ctx, uploadapi.SecretsQuery{Slug: "alpha", Caller: ann})
	if err != nil || len(list.Secrets) != 2 || list.Secrets[0].Name != "API_KEY" || list.Secrets[1].Name != "EDGE" || list.MaxCount != uploadapi.MaxSecrets {
		t.Fatalf("list: %+v, %v", list, err)
	}
	raw, _ := json.Marshal(list)
	if strings.Contains(string(raw), secretValue) {
		t.Fatalf("the list holds a value: %s", raw)
	}
	if _, err := w.client.ListSecrets(ctx, uploadapi.SecretsQuery{Slug: "alpha", Caller: admin}); err != nil {
		t.Fatalf("admin lists: %v", err)
	}
	_, err = w.client.ListSecrets(ctx, uploadapi.SecretsQuery{Slug: "alpha", Caller: bob})
	wantCode(t, "another developer lists", err, apierr.CodeForbidden)
	_, err = w.client.ListSecrets(ctx, uploadapi.SecretsQuery{Slug: "alpha"})
	wantCode(t, "no caller lists", err, apierr.CodeUnauthenticated)

	// The count limit.
	for i := 2; i < uploadapi.MaxSecrets; i++ {
		if _, err := w.client.SetSecret(ctx, uploadapi.SecretSet{Slug: "alpha", Name: fmt.Sprintf("K%02d", i), Value: "v", Caller: ann}); err != nil {
			t.Fatal(err)
		}
	}
	_, err = w.client.SetSecret(ctx, uploadapi.SecretSet{Slug: "alpha", Name: "ONE_TOO_MANY", Value: "v", Caller: ann})
	wantCode(t, "a secret past the limit", err, apierr.CodeConflict)
	if n := w.count(store.ExperimentSecrets, bson.D{{Key: "slug", Value: "alpha"}}); n != uploadapi.MaxSecrets {
		t.Fatalf("%d secrets after the refusal, want %d", n, uploadapi.MaxSecrets)
	}

	// Deleting.
	for _, c := range []struct {
		name string
		req  uploadapi.SecretDelete
		code apierr.Code
	}{
		{"another developer", uploadapi.SecretDelete{Slug: "alpha", Name: "API_KEY", Caller: bob}, apierr.CodeForbidden},
		{"no caller", uploadapi.SecretDelete{Slug: "alpha", Name: "API_KEY"}, apierr.CodeUnauthenticated},
		{"unset name", uploadapi.SecretDelete{Slug: "alpha", Name: "NOPE", Caller: ann}, apierr.CodeNotFound},
		{"a name that is none", uploadapi.SecretDelete{Slug: "alpha", Name: "../x", Caller: ann}, apierr.CodeNotFound},
		{"another experiment's", uploadapi.SecretDelete{Slug: "beta", Name: "API_KEY", Caller: bob}, apierr.CodeNotFound},
	} {
		_, err := w.client.DeleteSecret(ctx, c.req)
		wantCode(t, c.name, err, c.code)
	}
	gone, err := w.client.DeleteSecret(ctx, uploadapi.SecretDelete{Slug: "alpha", Name: "API_KEY", Caller: ann})
	if err != nil || gone.Name != "API_KEY" {
		t.Fatalf("delete: %+v, %v", gone, err)
	}
	_, err = w.client.DeleteSecret(ctx, uploadapi.SecretDelete{Slug: "alpha", Name: "API_KEY", Caller: ann})
	wantCode(t, "delete again", err, apierr.CodeNotFound)

	// The audit log has every change, and never a value.
	if n := w.audits("experiment.secret.set"); n != int64(uploadapi.MaxSecrets)+1 {
		t.Errorf("%d experiment.secret.set entries, want %d", n, uploadapi.MaxSecrets+1)
	}
	if n := w.audits("experiment.secret.delete"); n != 1 {
		t.Errorf("%d experiment.secret.delete entries, want 1", n)
	}
	cur, err := w.d.Store.Collection(store.AuditLog).Find(ctx, bson.D{{Key: "what", Value: bson.D{{Key: "$in", Value: bson.A{"experiment.secret.set", "experiment.secret.delete"}}}}})
	if err != nil {
		t.Fatal(err)
	}
	var entries []bson.Raw
	if err := cur.All(ctx, &entries); err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.Contains(e.String(), secretValue) || strings.Contains(e.String(), "xxxxxxxx") {
			t.Fatalf("an audit entry holds a value: %s", e)
		}
	}

	// Deleting the experiment deletes its secrets: a new experiment of the
	// slug starts with none.
	if err := w.client.Delete(ctx, uploadapi.Delete{Slug: "alpha", Confirm: "alpha", Caller: ann}); err != nil {
		t.Fatal(err)
	}
	if n := w.count(store.ExperimentSecrets, bson.D{{Key: "slug", Value: "alpha"}}); n != 0 {
		t.Fatalf("%d secrets of a deleted experiment remain", n)
	}
}

func sealerOf(t *testing.T, cur, prev string) *store.Sealer {
	t.Helper()
	s, err := store.NewSealer(cur, prev)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// A change of SECRET_KEY with SECRET_KEY_PREVIOUS: the service seals every
// value of the previous key again with the new one at its start, so the
// new key alone opens them afterwards; a value of a key it does not have
// is listed as lost.
func TestSecretsRotation(t *testing.T) {
	w := newWorld(t)
	const (
		oldKey   = "the-old-secret-key-0123456789abcdef0123"
		newKey   = "the-new-secret-key-0123456789abcdef0123"
		otherKey = "a-key-nobody-has-any-more-0123456789abcd"
	)
	ctx := ctxT(t)
	if err := w.d.Store.EnsureIndexes(ctx, store.ExperimentSecrets); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.d.Store.Secrets(sealerOf(t, oldKey, "")).Put(ctx, "alpha", "API_KEY", secretValue, ann.Email, uploadapi.MaxSecrets); err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.d.Store.Secrets(sealerOf(t, otherKey, "")).Put(ctx, "alpha", "LOST_ONE", "gone", ann.Email, uploadapi.MaxSecrets); err != nil {
		t.Fatal(err)
	}
	// The operator's change, as the environment says it.
	w.cfg = w.env.Config(t, map[string]string{"SECRET_KEY": newKey, "SECRET_KEY_PREVIOUS": oldKey})
	w.start()
	w.upload(ann, "alpha", nil)

	newOnly := w.d.Store.Secrets(sealerOf(t, newKey, ""))
	if v, _, err := newOnly.Reveal(ctx, "alpha", "API_KEY"); err != nil || v != secretValue {
		t.Fatalf("after the start, the new key alone opens %q, %v", v, err)
	}
	list, err := w.client.ListSecrets(ctx, uploadapi.SecretsQuery{Slug: "alpha", Caller: ann})
	if err != nil || len(list.Secrets) != 2 {
		t.Fatalf("list: %+v, %v", list, err)
	}
	keys := map[string]string{}
	for _, s := range list.Secrets {
		keys[s.Name] = s.Key
	}
	if keys["API_KEY"] != uploadapi.SecretKeyCurrent || keys["LOST_ONE"] != uploadapi.SecretKeyLost {
		t.Fatalf("key states %v, want API_KEY current and LOST_ONE lost", keys)
	}
	// Setting the lost one again makes it readable.
	if _, err := w.client.SetSecret(ctx, uploadapi.SecretSet{Slug: "alpha", Name: "LOST_ONE", Value: "again", Caller: ann}); err != nil {
		t.Fatal(err)
	}
	if v, _, err := newOnly.Reveal(ctx, "alpha", "LOST_ONE"); err != nil || v != "again" {
		t.Fatalf("a lost secret set again = %q, %v", v, err)
	}
}
