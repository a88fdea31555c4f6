package authapi

import (
	"context"

	"github.com/gnome-platform/gnome/libs/contract"
)

// Permissions on an experiment's custom resource (its manifest's
// auth_policy.custom_resource, default experiment:{slug}, and
// custom_actions, default ["access"]): lines of the shared policy the
// auth service writes for the experiment's owner and administrators. An
// owner writes and reads only a resource that is the experiment's own
// (experiment:{slug} or experiment:{slug}:...); any other name is for
// administrators alone.
var (
	EndpointPermsList   = contract.Endpoint[PermsList, Perms]{Service: Service, Name: "perms.list"}
	EndpointPermsGrant  = contract.Endpoint[PermsGrant, PermsChange]{Service: Service, Name: "perms.grant"}
	EndpointPermsRevoke = contract.Endpoint[PermsRevoke, PermsChange]{Service: Service, Name: "perms.revoke"}
)

// PermsList asks who holds what on slug's custom resource.
type PermsList struct {
	Actor Actor  `json:"actor"`
	Slug  string `json:"slug"`
}

// Perms is slug's custom resource, the actions its manifest names, and
// who holds which.
type Perms struct {
	Slug     string   `json:"slug"`
	Resource string   `json:"resource"`
	Actions  []string `json:"actions"`
	// Enforced is whether the manifest gives custom_resource or
	// custom_actions, so that opening the experiment needs them.
	Enforced bool `json:"enforced"`
	// Own is whether the resource is the experiment's own, which its
	// owner may grant; otherwise only administrators may.
	Own     bool     `json:"own"`
	Holders []Holder `json:"holders"`
}

// Holder is one subject's actions on the resource: a user's email, or a
// role for a line written otherwise than through this API.
type Holder struct {
	Subject string   `json:"subject"`
	Actions []string `json:"actions"`
}

// PermsGrant gives the platform user Email the Actions (each among the
// manifest's custom_actions) on slug's custom resource.
type PermsGrant struct {
	Actor   Actor    `json:"actor"`
	Slug    string   `json:"slug"`
	Email   string   `json:"email"`
	Actions []string `json:"actions"`
}

// PermsRevoke takes Action, or every action when it is "", on slug's
// custom resource from Email.
type PermsRevoke struct {
	Actor  Actor  `json:"actor"`
	Slug   string `json:"slug"`
	Email  string `json:"email"`
	Action string `json:"action,omitempty"`
}

// PermsChange is a grant's or revocation's outcome: what Email holds on
// Resource now, and the actions this call changed.
type PermsChange struct {
	Slug     string   `json:"slug"`
	Resource string   `json:"resource"`
	Email    string   `json:"email"`
	Actions  []string `json:"actions"`
	Changed  []string `json:"changed"`
}

// Perms lists who holds what on an experiment's custom resource.
func (c Client) Perms(ctx context.Context, r PermsList) (Perms, error) {
	return EndpointPermsList.Call(ctx, c.T, r)
}

// PermsGrant grants actions on an experiment's custom resource.
func (c Client) PermsGrant(ctx context.Context, r PermsGrant) (PermsChange, error) {
	return EndpointPermsGrant.Call(ctx, c.T, r)
}

// PermsRevoke revokes actions on an experiment's custom resource.
func (c Client) PermsRevoke(ctx context.Context, r PermsRevoke) (PermsChange, error) {
	return EndpointPermsRevoke.Call(ctx, c.T, r)
}
