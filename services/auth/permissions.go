package auth

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authapi"
	"github.com/gnome-platform/gnome/libs/authz"
	"github.com/gnome-platform/gnome/libs/bundle"
	"github.com/gnome-platform/gnome/libs/experiments"
)

// Permissions on an experiment's custom resource (authapi/permissions.go):
// the lines of the shared policy its auth_policy.custom_resource and
// custom_actions ask of its users. The auth service owns the policy, so it
// alone writes them, for the experiment's owner and administrators.
//
// The resource is the manifest's, and the manifest is its owner's to
// write: a name the owner chose is no proof the owner may grant it.
// custom_resource "admin_panel" with action "access" is the platform's
// administrator rule, "experiment:other" another experiment's. So an owner
// reads and writes only a resource that is the experiment's own
// (experiments.OwnResource); any other is for administrators.

// permTarget is an experiment's custom permission as a request about it
// may use it: its resource, actions, and whether the caller may.
type permTarget struct {
	actor    authapi.Actor
	slug     string
	resource string
	actions  []string
	enforced bool
	own      bool
}

// permTarget checks that actor is slug's owner or an administrator and, for
// an owner, that the experiment's custom resource is its own.
func (s *Service) permTarget(ctx context.Context, actor authapi.Actor, slug string) (*permTarget, error) {
	cl, err := s.identity.Claims(actor.Token)
	if err != nil {
		return nil, err
	}
	if cl.Kind != "" {
		return nil, apierr.New(apierr.CodeForbidden, "only platform users manage an experiment's permissions")
	}
	if !slugSyntax.MatchString(slug) {
		return nil, apierr.New(apierr.CodeValidationFailed, "slug %q is not a slug", slug).OnField("/slug")
	}
	cfg, err := s.d.Store.Experiments().Get(ctx, slug)
	if err != nil {
		return nil, fmt.Errorf("read experiment %s: %w", slug, err)
	}
	if cfg == nil {
		return nil, apierr.New(apierr.CodeNotFound, "no experiment %q", slug)
	}
	admin := cl.RoleInScope(authz.RoleAdmin) && s.enforcer.Allowed(cl.Email, authz.ObjAdminPanel, authz.ActAccess)
	owner := strings.EqualFold(cfg.OwnerEmail, cl.Email)
	if !admin && !(owner && cl.RoleInScope(authz.RoleDeveloper)) {
		if cfg.Status == experiments.StatusDraft && !owner {
			// A draft exists for its owner and administrators alone.
			return nil, apierr.New(apierr.CodeNotFound, "no experiment %q", slug)
		}
		return nil, apierr.New(apierr.CodeForbidden, "only the experiment's owner and administrators manage its permissions")
	}
	var policy bundle.AuthPolicy
	if m, _, err := bundle.ParseManifest([]byte(cfg.Manifest)); err == nil && m.AuthPolicy != nil {
		policy = *m.AuthPolicy
	}
	t := &permTarget{actor: authapi.Actor{Email: cl.Email, RequestID: actor.RequestID}, slug: slug}
	t.resource, t.actions, t.enforced = experiments.CustomPermission(slug, policy)
	t.own = experiments.OwnResource(slug, t.resource)
	if !admin && !t.own {
		return nil, apierr.New(apierr.CodeForbidden,
			"custom_resource %q is not this experiment's own (experiment:%s, or a name beginning experiment:%s:): only administrators grant, revoke or list permissions on it",
			t.resource, slug, slug)
	}
	return t, nil
}

func holders(en *authz.Enforcer, resource string) ([]authapi.Holder, error) {
	h, err := en.Holders(resource)
	if err != nil {
		return nil, err
	}
	out := make([]authapi.Holder, 0, len(h))
	for _, x := range h {
		out = append(out, authapi.Holder{Subject: x.Subject, Actions: x.Actions})
	}
	return out, nil
}

// heldBy is what email holds on resource now.
func heldBy(en *authz.Enforcer, resource, email string) ([]string, error) {
	h, err := en.Holders(resource)
	if err != nil {
		return nil, err
	}
	for _, x := range h {
		if x.Subject == email {
			return x.Actions, nil
		}
	}
	return []string{}, nil
}

func (s *Service) permsList(ctx context.Context, req authapi.PermsList) (authapi.Perms, error) {
	t, err := s.permTarget(ctx, req.Actor, req.Slug)
	if err != nil {
		return authapi.Perms{}, err
	}
	h, err := holders(s.enforcer, t.resource)
	if err != nil {
		return authapi.Perms{}, err
	}
	return authapi.Perms{Slug: t.slug, Resource: t.resource, Actions: t.actions, Enforced: t.enforced, Own: t.own, Holders: h}, nil
}

// permsGrant grants actions to a platform user who has an account. An
// email without one is refused rather than kept for later: emails are not
// verified, so with open registration whoever signed up with it first
// would inherit the grant.
func (s *Service) permsGrant(ctx context.Context, req authapi.PermsGrant) (authapi.PermsChange, error) {
	t, err := s.permTarget(ctx, req.Actor, req.Slug)
	if err != nil {
		return authapi.PermsChange{}, err
	}
	email, err := NormalizeEmail(req.Email)
	if err != nil {
		return authapi.PermsChange{}, err
	}
	if len(req.Actions) == 0 {
		return authapi.PermsChange{}, apierr.New(apierr.CodeValidationFailed, "give the actions to grant, among %s", strings.Join(t.actions, ", ")).OnField("/actions")
	}
	acts := []string{}
	for i, a := range req.Actions {
		if !slices.Contains(t.actions, a) {
			return authapi.PermsChange{}, apierr.New(apierr.CodeValidationFailed,
				"action %q is not one of the experiment's custom_actions (%s)", a, strings.Join(t.actions, ", ")).OnField(fmt.Sprintf("/actions/%d", i))
		}
		if !slices.Contains(acts, a) {
			acts = append(acts, a)
		}
	}
	u, err := s.users.get(ctx, email)
	if err != nil {
		return authapi.PermsChange{}, err
	}
	if u == nil {
		return authapi.PermsChange{}, apierr.New(apierr.CodeNotFound, "no platform user has the email %q", email).OnField("/email")
	}
	added, err := s.enforcer.Grant(email, t.resource, acts)
	if err != nil {
		return authapi.PermsChange{}, err
	}
	if added == nil {
		added = []string{}
	}
	if err := audit(ctx, s.d.Store, t.actor, "experiment.permission.grant", t.slug+"/"+email,
		map[string]any{"resource": t.resource, "actions": acts, "added": added}); err != nil {
		return authapi.PermsChange{}, err
	}
	held, err := heldBy(s.enforcer, t.resource, email)
	if err != nil {
		return authapi.PermsChange{}, err
	}
	return authapi.PermsChange{Slug: t.slug, Resource: t.resource, Email: email, Actions: held, Changed: added}, nil
}

// permsRevoke takes one action or all from email; nothing to take is 404.
// Any action may be named, not only the manifest's current ones, so that a
// line left by an earlier version's actions can be taken too.
func (s *Service) permsRevoke(ctx context.Context, req authapi.PermsRevoke) (authapi.PermsChange, error) {
	t, err := s.permTarget(ctx, req.Actor, req.Slug)
	if err != nil {
		return authapi.PermsChange{}, err
	}
	email, err := NormalizeEmail(req.Email)
	if err != nil {
		return authapi.PermsChange{}, err
	}
	if len(req.Action) > 320 {
		return authapi.PermsChange{}, apierr.New(apierr.CodeValidationFailed, "action is over 320 characters").OnField("/action")
	}
	removed, err := s.enforcer.Revoke(email, t.resource, req.Action)
	if err != nil {
		return authapi.PermsChange{}, err
	}
	if len(removed) == 0 {
		if req.Action != "" {
			return authapi.PermsChange{}, apierr.New(apierr.CodeNotFound, "%s does not hold %q on %s", email, req.Action, t.resource)
		}
		return authapi.PermsChange{}, apierr.New(apierr.CodeNotFound, "%s holds nothing on %s", email, t.resource)
	}
	if err := audit(ctx, s.d.Store, t.actor, "experiment.permission.revoke", t.slug+"/"+email,
		map[string]any{"resource": t.resource, "removed": removed}); err != nil {
		return authapi.PermsChange{}, err
	}
	held, err := heldBy(s.enforcer, t.resource, email)
	if err != nil {
		return authapi.PermsChange{}, err
	}
	return authapi.PermsChange{Slug: t.slug, Resource: t.resource, Email: email, Actions: held, Changed: removed}, nil
}
