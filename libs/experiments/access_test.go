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
