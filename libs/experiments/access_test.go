package experiments_test

import (
	"testing"

	"github.com/gnome-platform/gnome/libs/bundle"
	"github.com/gnome-platform/gnome/libs/experiments"
)

type perms map[string]bool

func (p perms) Allowed(sub, obj, act string) bool { return p[sub+" "+obj+":"+act] }

func ptr[T any](v T) *T { return &v }

func TestDecide(t *testing.T) {
	owner := &experiments.Viewer{Email: "dev@example.com", Roles: []string{"developer"}}
	admin := &experiments.Viewer{Email: "root@example.com", Roles: []string{"admin"}, IsAdmin: true}
	user := &experiments.Viewer{Email: "uma@example.com", Roles: []string{"user"}}
	dev2 := &experiments.Viewer{Email: "other@example.com", Roles: []string{"developer"}}
	banned := &experiments.Viewer{Email: "banned@example.com", Roles: []string{"user"}}
	var anon *experiments.Viewer
	p := perms{"uma@example.com experiments:view": true}

	public := experiments.Rules{Owner: "dev@example.com", Status: "active"}
	signedIn := public
	signedIn.AuthRequired = true
	roles := public
	roles.Policy = bundle.AuthPolicy{AllowedRoles: []string{"developer"}, DeniedUsers: []string{"Banned@example.com"}}
	users := public
	users.Policy = bundle.AuthPolicy{AllowedUsers: []string{"uma@example.com"}}
	permsRule := public
	permsRule.Policy = bundle.AuthPolicy{RequiredPermissions: []string{"experiments:view"}}
	anonOK := public
	anonOK.Policy = bundle.AuthPolicy{Required: ptr(true), AllowAnonymous: ptr(true)}
	noOwner := public
	noOwner.Policy = bundle.AuthPolicy{OwnerCanAccess: ptr(false), AllowedRoles: []string{"user"}}
	draft := public
	draft.Status = "draft"
	archived := public
	archived.Status = "archived"
	bannedEverywhere := public
	bannedEverywhere.Policy = bundle.AuthPolicy{DeniedUsers: []string{"banned@example.com"}}

	cases := []struct {
		name string
		r    experiments.Rules
		v    *experiments.Viewer
		a    experiments.Action
		want experiments.Decision
	}{
		{"public, anonymous", public, anon, experiments.Open, experiments.Allow},
		{"public, user", public, user, experiments.Open, experiments.Allow},
		{"auth required, anonymous", signedIn, anon, experiments.Open, experiments.NeedLogin},
		{"auth required, user", signedIn, user, experiments.Open, experiments.Allow},
		{"roles, anonymous", roles, anon, experiments.Open, experiments.NeedLogin},
		{"roles, user without role", roles, user, experiments.Open, experiments.Deny},
		{"roles, developer", roles, dev2, experiments.Open, experiments.Allow},
		{"denied first, even with the role", roles, &experiments.Viewer{Email: "banned@example.com", Roles: []string{"developer"}}, experiments.Open, experiments.Deny},
		{"denied on a public experiment", bannedEverywhere, banned, experiments.Open, experiments.Deny},
		{"allowed users, listed", users, user, experiments.Open, experiments.Allow},
		{"allowed users, not listed", users, dev2, experiments.Open, experiments.Deny},
		{"permissions held", permsRule, user, experiments.Open, experiments.Allow},
		{"permissions missing", permsRule, dev2, experiments.Open, experiments.Deny},
		{"allow anonymous", anonOK, anon, experiments.Open, experiments.Allow},
		{"owner", roles, owner, experiments.Open, experiments.Allow},
		{"owner_can_access false", noOwner, owner, experiments.Open, experiments.Deny},
		{"admin everywhere", noOwner, admin, experiments.Open, experiments.Allow},
		{"draft, user", draft, user, experiments.Open, experiments.Hidden},
		{"draft, anonymous", draft, anon, experiments.Open, experiments.Hidden},
		{"draft, owner", draft, owner, experiments.Open, experiments.Allow},
		{"draft, admin", draft, admin, experiments.Open, experiments.Allow},
		{"archived, owner opens", archived, owner, experiments.Open, experiments.Hidden},
		{"archived, owner reads", archived, owner, experiments.Read, experiments.Allow},
		{"archived, owner exports", archived, owner, experiments.Export, experiments.Allow},
		{"archived, user reads", archived, user, experiments.Read, experiments.Hidden},
		{"archived, admin exports", archived, admin, experiments.Export, experiments.Allow},
		{"manage, owner", public, owner, experiments.Manage, experiments.Allow},
		{"manage, other developer", public, dev2, experiments.Manage, experiments.Deny},
		{"manage, anonymous", public, anon, experiments.Manage, experiments.NeedLogin},
		{"manage, admin", public, admin, experiments.Manage, experiments.Allow},
		{"manage a draft, other developer", draft, dev2, experiments.Manage, experiments.Hidden},
		{"export, public, user", public, user, experiments.Export, experiments.Allow},
		{"export, roles, user without role", roles, user, experiments.Export, experiments.Deny},
	}
	for _, c := range cases {
		if got := experiments.Decide(c.r, c.v, p, c.a); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
}

// custom_resource and custom_actions: a platform user must hold every
// action on the resource in the shared policy; nothing else stands in for
// it but being an admin or the owner.
func TestDecideCustomPermission(t *testing.T) {
	owner := &experiments.Viewer{Email: "dev@example.com", Roles: []string{"developer"}}
	admin := &experiments.Viewer{Email: "root@example.com", Roles: []string{"admin"}, IsAdmin: true}
	holder := &experiments.Viewer{Email: "ann@example.com", Roles: []string{"user"}}
	half := &experiments.Viewer{Email: "hal@example.com", Roles: []string{"user"}}
	stranger := &experiments.Viewer{Email: "sam@example.com", Roles: []string{"user"}}
	// An experiment's own account or demo account: signed in, no email
	// the platform knows (how the edge hands such tokens to Decide).
	own := &experiments.Viewer{}
	var anon *experiments.Viewer
	p := perms{
		"ann@example.com experiment:notes:access": true,
		"ann@example.com lab:read":                true, "ann@example.com lab:write": true,
		"hal@example.com lab:read": true,
		"dev@example.com lab:read": true,
		// A policy for the empty subject must never let an emailless viewer in.
		" experiment:notes:access": true, " lab:read": true, " lab:write": true,
	}
	base := experiments.Rules{Slug: "notes", Owner: "dev@example.com", Status: "active"}
	with := func(ap bundle.AuthPolicy) experiments.Rules { r := base; r.Policy = ap; return r }
	resourceOnly := with(bundle.AuthPolicy{CustomResource: "experiment:notes"})
	actionsOnly := with(bundle.AuthPolicy{CustomActions: []string{"access"}})
	lab := with(bundle.AuthPolicy{CustomResource: "lab", CustomActions: []string{"read", "write"}})
	labAnon := with(bundle.AuthPolicy{CustomResource: "lab", CustomActions: []string{"read", "write"}, AllowAnonymous: ptr(true)})
	labListed := with(bundle.AuthPolicy{CustomResource: "lab", CustomActions: []string{"read", "write"}, AllowedUsers: []string{"sam@example.com"}})
	labDenied := with(bundle.AuthPolicy{CustomResource: "lab", CustomActions: []string{"read", "write"}, DeniedUsers: []string{"ann@example.com"}})
	labNoOwner := with(bundle.AuthPolicy{CustomResource: "lab", CustomActions: []string{"read", "write"}, OwnerCanAccess: ptr(false)})
	labRoles := with(bundle.AuthPolicy{CustomResource: "lab", CustomActions: []string{"read", "write"}, AllowedRoles: []string{"developer"}})
	draft := lab
	draft.Status = "draft"

	cases := []struct {
		name string
		r    experiments.Rules
		v    *experiments.Viewer
		a    experiments.Action
		want experiments.Decision
	}{
		{"default action, holder", resourceOnly, holder, experiments.Open, experiments.Allow},
		{"default action, stranger", resourceOnly, stranger, experiments.Open, experiments.Deny},
		{"default resource, holder", actionsOnly, holder, experiments.Open, experiments.Allow},
		{"default resource, stranger", actionsOnly, stranger, experiments.Open, experiments.Deny},
		{"anonymous must sign in", lab, anon, experiments.Open, experiments.NeedLogin},
		{"allow_anonymous does not lift it", labAnon, anon, experiments.Open, experiments.NeedLogin},
		{"every action held", lab, holder, experiments.Open, experiments.Allow},
		{"one action of two", lab, half, experiments.Open, experiments.Deny},
		{"none held", lab, stranger, experiments.Open, experiments.Deny},
		{"the record, without it", lab, stranger, experiments.Read, experiments.Deny},
		{"the record, with it", lab, holder, experiments.Read, experiments.Allow},
		{"an export, without it", lab, stranger, experiments.Export, experiments.Deny},
		{"allowed_users does not stand in", labListed, stranger, experiments.Open, experiments.Deny},
		{"allowed_users and the permission", labListed, holder, experiments.Open, experiments.Deny},
		{"allowed_roles on top, without the role", labRoles, holder, experiments.Open, experiments.Deny},
		{"denied_users first", labDenied, holder, experiments.Open, experiments.Deny},
		{"owner", lab, owner, experiments.Open, experiments.Allow},
		{"owner_can_access false, owner lacks write", labNoOwner, owner, experiments.Open, experiments.Deny},
		{"admin", lab, admin, experiments.Open, experiments.Allow},
		{"draft hidden before it", draft, holder, experiments.Open, experiments.Hidden},
		{"experiment's own account", lab, own, experiments.Open, experiments.Deny},
		{"experiment's own account, default resource", resourceOnly, own, experiments.Open, experiments.Deny},
		{"no policy asked of anyone", base, own, experiments.Open, experiments.Allow},
	}
	for _, c := range cases {
		if got := experiments.Decide(c.r, c.v, p, c.a); got != c.want {
			t.Errorf("%s: %v, want %v", c.name, got, c.want)
		}
	}
	if got := experiments.Decide(lab, holder, nil, experiments.Open); got != experiments.Deny {
		t.Errorf("without a policy to ask: %v, want deny", got)
	}
}

func TestCustomPermissionAndOwnResource(t *testing.T) {
	res, acts, on := experiments.CustomPermission("notes", bundle.AuthPolicy{})
	if on || res != "experiment:notes" || len(acts) != 1 || acts[0] != "access" {
		t.Errorf("no custom fields: %q %q %v", res, acts, on)
	}
	res, acts, on = experiments.CustomPermission("notes", bundle.AuthPolicy{CustomResource: "lab", CustomActions: []string{"read"}})
	if !on || res != "lab" || len(acts) != 1 || acts[0] != "read" {
		t.Errorf("both given: %q %q %v", res, acts, on)
	}
	for res, want := range map[string]bool{
		"experiment:notes": true, "experiment:notes:admin": true, "experiment:notes:": true,
		"experiment:notesx": false, "experiment:note": false, "experiment:other": false, "admin_panel": false,
		"experiments": false, "Experiment:notes": false, "experiment:notes ": false, "": false, "xexperiment:notes": false,
	} {
		if got := experiments.OwnResource("notes", res); got != want {
			t.Errorf("OwnResource(notes, %q) = %v, want %v", res, got, want)
		}
	}
	if experiments.OwnResource("", "experiment:") {
		t.Error("an empty slug owns experiment:")
	}
}
