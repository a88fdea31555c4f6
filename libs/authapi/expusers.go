package authapi

import (
	"context"
	"time"

	"github.com/gnome-platform/gnome/libs/contract"
)

// Accounts that belong to one experiment alone (the manifest's sub_auth
// with strategy experiment_users): the auth service keeps them apart from
// the platform's users, and their sessions are good on that experiment's
// origin only (authn.KindExperimentUser tokens).
var (
	EndpointExpRegister    = contract.Endpoint[ExpCredentials, Session]{Service: Service, Name: "exp.register"}
	EndpointExpLogin       = contract.Endpoint[ExpCredentials, Session]{Service: Service, Name: "exp.login"}
	EndpointExpUsersList   = contract.Endpoint[ExpUsersList, ExpUsers]{Service: Service, Name: "exp.users.list"}
	EndpointExpUsersUpdate = contract.Endpoint[ExpUserUpdate, ExpUser]{Service: Service, Name: "exp.users.update"}
	EndpointExpUsersDelete = contract.Endpoint[ExpUserDelete, Empty]{Service: Service, Name: "exp.users.delete"}
)

// ExpCredentials sign an experiment's account in or up on slug's origin.
type ExpCredentials struct {
	Slug     string `json:"slug"`
	Email    string `json:"email"`
	Password string `json:"password"`
}

// ExpUser is an experiment's account as callers see it.
type ExpUser struct {
	ID    string `json:"id"`
	Slug  string `json:"slug"`
	Email string `json:"email"`
	// Kind is "demo" for an account of sub_auth.demo_users, "linked" for
	// a platform user's on a hybrid experiment, "" for one made by
	// sign-up; Role is a demo account's role.
	Kind      string    `json:"kind,omitempty"`
	Role      string    `json:"role,omitempty"`
	Disabled  bool      `json:"disabled"`
	CreatedAt time.Time `json:"created_at"`
}

// ExpUsersList asks for slug's accounts, for its owner or an admin.
type ExpUsersList struct {
	Actor Actor  `json:"actor"`
	Slug  string `json:"slug"`
}

// ExpUsers are an experiment's accounts.
type ExpUsers struct {
	Users []ExpUser `json:"users"`
}

// ExpUserUpdate disables or enables one account.
type ExpUserUpdate struct {
	Actor    Actor  `json:"actor"`
	Slug     string `json:"slug"`
	ID       string `json:"id"`
	Disabled *bool  `json:"disabled,omitempty"`
}

// ExpUserDelete deletes one account.
type ExpUserDelete struct {
	Actor Actor  `json:"actor"`
	Slug  string `json:"slug"`
	ID    string `json:"id"`
}

// ExpRegister creates an account of an experiment and signs it in.
func (c Client) ExpRegister(ctx context.Context, cr ExpCredentials) (Session, error) {
	return EndpointExpRegister.Call(ctx, c.T, cr)
}

// ExpLogin signs an experiment's account in.
func (c Client) ExpLogin(ctx context.Context, cr ExpCredentials) (Session, error) {
	return EndpointExpLogin.Call(ctx, c.T, cr)
}

// ExpUsers lists an experiment's accounts.
func (c Client) ExpUsers(ctx context.Context, r ExpUsersList) (ExpUsers, error) {
	return EndpointExpUsersList.Call(ctx, c.T, r)
}

// ExpUserUpdate changes an experiment account's state.
func (c Client) ExpUserUpdate(ctx context.Context, r ExpUserUpdate) (ExpUser, error) {
	return EndpointExpUsersUpdate.Call(ctx, c.T, r)
}

// ExpUserDelete deletes an experiment's account.
func (c Client) ExpUserDelete(ctx context.Context, r ExpUserDelete) error {
	_, err := EndpointExpUsersDelete.Call(ctx, c.T, r)
	return err
}
