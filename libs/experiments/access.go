package experiments

import (
	"slices"
	"strings"

	"github.com/gnome-platform/gnome/libs/bundle"
)

// Viewer is who asks; nil is an anonymous visitor.
type Viewer struct {
	Email string
	Roles []string
	// IsAdmin is decided by the shared policy (admin_panel access).
	IsAdmin bool
	// Scoped marks a personal API token's roles, which may be fewer than
	// its user's: managing even one's own experiment then needs the
	// developer role in the token (ManagesOwn).
	Scoped bool
}

// ManagesOwn reports whether v may manage the experiments its user owns:
// a personal token made with fewer roles gets no more than those.
func (v *Viewer) ManagesOwn() bool {
	return v != nil && (!v.Scoped || slices.Contains(v.Roles, "developer") || slices.Contains(v.Roles, "admin"))
}

// Permissions decides resource:action pairs of required_permissions.
type Permissions interface {
	Allowed(sub, obj, act string) bool
}

// Action is what the viewer wants of the experiment.
type Action int

const (
	// Open is every /experiments/{slug}/... route: pages, API, health.
	Open Action = iota
	// Read is GET /api/experiments/{slug}: its configuration.
	Read
	// Export builds and downloads its packages.
	Export
	// Manage uploads versions, changes and deletes it.
	Manage
)

// Decision is the outcome of an access check.
type Decision int

const (
	Allow Decision = iota
	// NeedLogin: an anonymous visitor must sign in (401, or a redirect).
	NeedLogin
	// Deny: signed in, and not allowed (403).
	Deny
	// Hidden: the viewer may not know it exists, or it is not served (404).
	Hidden
)

func (d Decision) String() string {
	return [...]string{"allow", "need_login", "deny", "hidden"}[d]
}

// Rules are what access depends on: the experiment's owner, status and its
// manifest's access fields.
type Rules struct {
	// Slug names the default custom resource, experiment:{slug}.
	Slug         string
	Owner        string
	Status       string
	AuthRequired bool
	Policy       bundle.AuthPolicy
}

// RulesOf reads the rules from a configuration and its parsed manifest.
func RulesOf(c *Config, m *bundle.Manifest) Rules {
	r := Rules{Slug: c.Slug, Owner: c.OwnerEmail, Status: c.Status}
	if m != nil {
		if m.AuthRequired != nil {
			r.AuthRequired = *m.AuthRequired
		}
		if m.AuthPolicy != nil {
			r.Policy = *m.AuthPolicy
		}
	}
	return r
}

// Decide applies the rules for action a, in this order: admins may do
// everything; only the owner may manage; status hides drafts from all but
// owner and admins and stops serving archived and inactive experiments
// (owners still read and export them); denied_users are refused before
// anything grants; the owner may open it unless owner_can_access is false;
// then sign-in (auth_required, auth_policy.required, any allow-list, or a
// custom permission; allow_anonymous lifts it only when none of those is
// given); the custom permission (every custom_actions action on
// custom_resource, through the shared policy), which nothing after it can
// stand in for; then allowed_users, allowed_roles and required_permissions
// ("resource:action", through the shared policy).
//
// Only platform users hold policies: a viewer without an email (an
// experiment's own account or demo account) is refused a custom permission
// and required_permissions, as it matches no allow-list.
func Decide(r Rules, v *Viewer, perms Permissions, a Action) Decision {
	if v != nil && v.IsAdmin {
		return Allow
	}
	owner := v != nil && v.Email != "" && strings.EqualFold(v.Email, r.Owner)
	if a == Manage && owner && !v.ManagesOwn() {
		// The owner's personal token made without the developer role
		// reads and opens, but changes nothing.
		return Deny
	}
	return decide(r, v, owner, perms, a)
}

func decide(r Rules, v *Viewer, owner bool, perms Permissions, a Action) Decision {
	switch a {
	case Manage:
		if owner {
			return Allow
		}
		if v == nil {
			return NeedLogin
		}
		if r.Status == StatusDraft {
			return Hidden
		}
		return Deny
	case Read, Export:
		// Owners see and export their experiments in every status.
		if owner {
			return Allow
		}
	}
	switch r.Status {
	case StatusActive:
	case StatusDraft:
		if !owner {
			return Hidden
		}
	default: // archived, inactive: served to no one
		if a == Open || !owner {
			return Hidden
		}
	}
	p := r.Policy
	if v != nil && containsFold(p.DeniedUsers, v.Email) {
		return Deny
	}
	if owner && (p.OwnerCanAccess == nil || *p.OwnerCanAccess) {
		return Allow
	}
	resource, actions, custom := CustomPermission(r.Slug, p)
	required := r.AuthRequired || (p.Required != nil && *p.Required) ||
		len(p.AllowedRoles) > 0 || len(p.AllowedUsers) > 0 || len(p.RequiredPermissions) > 0 || custom
	if p.AllowAnonymous != nil && *p.AllowAnonymous && len(p.AllowedRoles) == 0 && len(p.AllowedUsers) == 0 && len(p.RequiredPermissions) == 0 && !custom {
		required = false
	}
	if v == nil {
		if required {
			return NeedLogin
		}
		return Allow
	}
	if custom {
		// The experiment named who may use it in the shared policy:
		// holding every action is the condition, for listed users too.
		for _, act := range actions {
			if v.Email == "" || perms == nil || !perms.Allowed(v.Email, resource, act) {
				return Deny
			}
		}
	}
	if containsFold(p.AllowedUsers, v.Email) {
		return Allow
	}
	if len(p.AllowedRoles) > 0 && !slices.ContainsFunc(v.Roles, func(role string) bool { return slices.Contains(p.AllowedRoles, role) }) {
		return Deny
	}
	if len(p.AllowedUsers) > 0 && len(p.AllowedRoles) == 0 {
		return Deny
	}
	for _, perm := range p.RequiredPermissions {
		res, act, ok := strings.Cut(perm, ":")
		if !ok || perms == nil || !perms.Allowed(v.Email, res, act) {
			return Deny
		}
	}
	return Allow
}

func containsFold(list []string, s string) bool {
	return slices.ContainsFunc(list, func(x string) bool { return strings.EqualFold(strings.TrimSpace(x), s) })
}

// DefaultCustomAction is what custom_actions is when only custom_resource
// is given.
const DefaultCustomAction = "access"

// CustomPermission is the permission an experiment's auth_policy asks of
// its users through custom_resource (default experiment:{slug}) and
// custom_actions (default ["access"]); on is false when the policy gives
// neither, and no custom permission is asked.
func CustomPermission(slug string, p bundle.AuthPolicy) (resource string, actions []string, on bool) {
	on = p.CustomResource != "" || len(p.CustomActions) > 0
	resource = p.CustomResource
	if resource == "" {
		resource = "experiment:" + slug
	}
	actions = p.CustomActions
	if len(actions) == 0 {
		actions = []string{DefaultCustomAction}
	}
	return resource, actions, on
}

// OwnResource reports whether resource is slug's own, experiment:{slug} or
// below it (experiment:{slug}:...): the only resources the experiment's
// owner may write policies on. Any other name may be the platform's
// (admin_panel) or another experiment's, which only admins may grant.
func OwnResource(slug, resource string) bool {
	own := "experiment:" + slug
	return slug != "" && (resource == own || strings.HasPrefix(resource, own+":"))
}
