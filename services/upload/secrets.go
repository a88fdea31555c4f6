package upload

import (
	"context"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/scoped"
	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

// Experiments' secrets (docs/experiments.md, "Secrets"). The upload service
// owns them as it owns the experiments' records: only it writes them, for
// the owner and admins, each change audited. Values are sealed in the
// store (libs/store Sealer) and never leave this service again: replies,
// audit entries and log lines carry names and sizes. Actor workers open
// them in the store with the same SECRET_KEY (host operation secret.get).

// secretRecords is what secrets need of their store; store.Secrets is the
// MongoDB one.
type secretRecords interface {
	Put(ctx context.Context, slug, name, value, by string, limit int) (uploadapi.Secret, bool, error)
	List(ctx context.Context, slug string) ([]uploadapi.Secret, error)
	Remove(ctx context.Context, slug, name string) (*uploadapi.Secret, error)
	RemoveOf(ctx context.Context, slug string) (int64, error)
	Reseal(ctx context.Context) (resealed, lost int, err error)
}

var _ secretRecords = store.Secrets{}

// provisionSecrets derives the sealing keys and seals again, with the
// current key, the values sealed with SECRET_KEY_PREVIOUS. A failure to
// reseal is logged, not fatal: the values still open with the previous
// key, and the next start tries again.
func (s *Service) provisionSecrets(ctx context.Context) error {
	if err := s.d.Store.EnsureIndexes(ctx, store.ExperimentSecrets); err != nil {
		return err
	}
	sealer, err := store.NewSealer(s.d.Config.SecretKey, s.d.Config.SecretKeyPrevious)
	if err != nil {
		return fmt.Errorf("secrets: %w", err)
	}
	s.secrets = s.d.Store.Secrets(sealer)
	n, lost, err := s.secrets.Reseal(ctx)
	switch {
	case err != nil:
		s.d.Log.ErrorContext(ctx, "sealing secrets with the current key failed; they still open with SECRET_KEY_PREVIOUS", "resealed", n, "err", err)
	case n > 0 || lost > 0:
		s.d.Log.InfoContext(ctx, "secrets sealed again with the current SECRET_KEY", "resealed", n, "unreadable", lost)
	}
	if lost > 0 {
		s.d.Log.WarnContext(ctx, "some experiments' secrets were sealed with a key this platform no longer has; their owners must set them again (GET /api/experiments/{slug}/secrets shows key \"lost\")", "unreadable", lost)
	}
	return nil
}

func secretNameError(name string) error {
	if len(name) > 80 {
		name = name[:80] + "..."
	}
	return apierr.New(apierr.CodeValidationFailed,
		"%q is not a secret's name: an upper-case letter, then up to 63 upper-case letters, digits and '_' (like API_KEY)", name).OnField("/name")
}

// listSecrets answers an experiment's secrets, without values, to its
// owner and admins.
func (s *Service) listSecrets(ctx context.Context, req uploadapi.SecretsQuery) (uploadapi.Secrets, error) {
	cfg, err := s.managed(ctx, req.Slug, req.Caller, "see the secrets of")
	if err != nil {
		return uploadapi.Secrets{}, err
	}
	list, err := s.secrets.List(ctx, cfg.Slug)
	if err != nil {
		return uploadapi.Secrets{}, err
	}
	return uploadapi.Secrets{Slug: cfg.Slug, Secrets: list, MaxCount: uploadapi.MaxSecrets, MaxValue: uploadapi.MaxSecretValue,
		NameRegex: uploadapi.SecretNameSyntax.String()}, nil
}

// setSecret creates or replaces a secret. Every refusal changes nothing.
func (s *Service) setSecret(ctx context.Context, req uploadapi.SecretSet) (uploadapi.SecretResult, error) {
	cfg, err := s.managed(ctx, req.Slug, req.Caller, "set the secrets of")
	if err != nil {
		return uploadapi.SecretResult{}, err
	}
	switch {
	case !uploadapi.SecretNameSyntax.MatchString(req.Name):
		return uploadapi.SecretResult{}, secretNameError(req.Name)
	case req.Value == "":
		return uploadapi.SecretResult{}, apierr.New(apierr.CodeValidationFailed, "value is required: a non-empty string (to remove a secret, DELETE it)").OnField("/value")
	case len(req.Value) > uploadapi.MaxSecretValue:
		return uploadapi.SecretResult{}, apierr.New(apierr.CodePayloadTooLarge, "the value is %d bytes, over the limit of %d", len(req.Value), uploadapi.MaxSecretValue).OnField("/value")
	case !utf8.ValidString(req.Value):
		return uploadapi.SecretResult{}, apierr.New(apierr.CodeValidationFailed, "the value is not valid UTF-8").OnField("/value")
	}
	sec, created, err := s.secrets.Put(ctx, cfg.Slug, req.Name, req.Value, req.Caller.Email, uploadapi.MaxSecrets)
	if errors.Is(err, store.ErrTooManySecrets) {
		return uploadapi.SecretResult{}, apierr.New(apierr.CodeConflict, "experiment %q has %d secrets, the most it may have; delete one first", cfg.Slug, uploadapi.MaxSecrets).OnField("/name")
	}
	if err != nil {
		return uploadapi.SecretResult{}, err
	}
	if created {
		// Packages list the secrets' names: a new name makes the
		// experiment's packages out of date.
		s.namesChanged(ctx, cfg.Slug)
	}
	if err := s.audit(ctx, req.Caller, "experiment.secret.set", cfg.Slug, map[string]any{"name": req.Name, "created": created, "size": len(req.Value)}); err != nil {
		return uploadapi.SecretResult{}, err
	}
	s.d.Log.InfoContext(ctx, "secret set", "slug", cfg.Slug, "name", req.Name, "created", created, "by", req.Caller.Email)
	return uploadapi.SecretResult{Secret: sec, Created: created}, nil
}

// deleteSecret removes a secret; an actor reading it afterwards gets
// not_found.
func (s *Service) deleteSecret(ctx context.Context, req uploadapi.SecretDelete) (uploadapi.Secret, error) {
	cfg, err := s.managed(ctx, req.Slug, req.Caller, "delete the secrets of")
	if err != nil {
		return uploadapi.Secret{}, err
	}
	if !uploadapi.SecretNameSyntax.MatchString(req.Name) {
		return uploadapi.Secret{}, apierr.New(apierr.CodeNotFound, "experiment %q has no such secret", cfg.Slug)
	}
	gone, err := s.secrets.Remove(ctx, cfg.Slug, req.Name)
	if err != nil {
		return uploadapi.Secret{}, err
	}
	if gone == nil {
		return uploadapi.Secret{}, apierr.New(apierr.CodeNotFound, "experiment %q has no secret %s", cfg.Slug, req.Name)
	}
	s.namesChanged(ctx, cfg.Slug)
	if err := s.audit(ctx, req.Caller, "experiment.secret.delete", cfg.Slug, map[string]any{"name": req.Name}); err != nil {
		return uploadapi.Secret{}, err
	}
	s.d.Log.InfoContext(ctx, "secret deleted", "slug", cfg.Slug, "name", req.Name, "by", req.Caller.Email)
	return *gone, nil
}

// namesChanged raises the experiment's data version, so that no package
// listing the old names is reused. A failure is logged: the change itself
// is made.
func (s *Service) namesChanged(ctx context.Context, slug string) {
	if err := scoped.BumpDataSeq(ctx, s.d.Store.DB, slug); err != nil {
		s.d.Log.WarnContext(ctx, "recording a change of secret names for exports failed", "slug", slug, "err", err)
	}
}

// dropSecretsOf deletes a deleted experiment's secrets: a new experiment
// of the slug starts with none.
func (s *Service) dropSecretsOf(ctx context.Context, slug string) error {
	n, err := s.secrets.RemoveOf(ctx, slug)
	if err != nil {
		return err
	}
	if n > 0 {
		s.d.Log.InfoContext(ctx, "secrets of a deleted experiment removed", "slug", slug, "secrets", n)
	}
	return nil
}
