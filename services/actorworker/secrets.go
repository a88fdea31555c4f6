package actorworker

import (
	"context"
	"errors"
	"sync"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

// The host operation secret.get: an actor reads a secret its experiment's
// owner set (docs/experiments.md, "Secrets"). The worker opens the sealed
// value in the store with the key it derives from SECRET_KEY (or
// SECRET_KEY_PREVIOUS), reading it at each call, so that a change or a
// deletion holds from the next call on. The value goes to the guest and
// nowhere else: not into errors, log lines or span attributes.

// sealers holds each Service's sealer, derived once from its config.
var sealers sync.Map // *Service -> *store.Sealer

func (s *Service) sealer() (*store.Sealer, error) {
	if v, ok := sealers.Load(s); ok {
		return v.(*store.Sealer), nil
	}
	sl, err := store.NewSealer(s.d.Config.SecretKey, s.d.Config.SecretKeyPrevious)
	if err != nil {
		return nil, err
	}
	v, _ := sealers.LoadOrStore(s, sl)
	return v.(*store.Sealer), nil
}

type secretGetReq struct {
	Name string `json:"name"`
}

type secretGetRes struct {
	Value string `json:"value"`
}

func (h *host) secretGet(ctx context.Context, req []byte) (any, error) {
	var r secretGetReq
	if err := decode(req, &r); err != nil {
		return nil, err
	}
	if !uploadapi.SecretNameSyntax.MatchString(r.Name) {
		return nil, apierr.New(apierr.CodeValidationFailed,
			"name is not a secret's name: an upper-case letter, then up to 63 upper-case letters, digits and '_' (like API_KEY)").OnField("/name")
	}
	sl, err := h.s.sealer()
	if err != nil {
		return nil, apierr.Wrap(apierr.CodeInternal, err, "the platform cannot open secrets")
	}
	v, found, err := h.s.d.Store.Secrets(sl).Reveal(ctx, h.slug, r.Name)
	switch {
	case errors.Is(err, store.ErrSecretKeyLost):
		return nil, apierr.New(apierr.CodeGone,
			"secret %s was sealed with a key this platform no longer has; the experiment's owner must set it again", r.Name).OnField("/name")
	case errors.Is(err, store.ErrSecretTampered):
		return nil, apierr.Wrap(apierr.CodeInternal, err, "secret "+r.Name+" does not open")
	case err != nil:
		return nil, apierr.Wrap(apierr.CodeUnavailable, err, "the secrets could not be read; try again")
	case !found:
		return nil, apierr.New(apierr.CodeNotFound, "experiment %q has no secret %s: its owner sets it with PUT /api/experiments/%s/secrets/%s", h.slug, r.Name, h.slug, r.Name).OnField("/name")
	}
	return secretGetRes{Value: v}, nil
}
