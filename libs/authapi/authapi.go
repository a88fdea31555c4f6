// Package authapi is the auth service's contract on the bus: its endpoints,
// the shapes of its requests and replies (schemas/messages/auth-*.json) and
// a typed client.
package authapi

import (
	"context"
	"time"

	"github.com/gnome-platform/gnome/libs/contract"
)

// Service is the auth service's name on the bus.
const Service = "auth"

// Endpoints of the auth service.
var (
	EndpointLogin       = contract.Endpoint[Credentials, Session]{Service: Service, Name: "login"}
	EndpointRegister    = contract.Endpoint[Credentials, Session]{Service: Service, Name: "register"}
	EndpointLogout      = contract.Endpoint[Logout, Empty]{Service: Service, Name: "logout"}
	EndpointUsersList   = contract.Endpoint[ListUsers, Users]{Service: Service, Name: "users.list"}
	EndpointUsersCreate = contract.Endpoint[CreateUser, User]{Service: Service, Name: "users.create"}
	EndpointUsersUpdate = contract.Endpoint[UpdateUser, User]{Service: Service, Name: "users.update"}
	EndpointRoleGrant   = contract.Endpoint[RoleChange, User]{Service: Service, Name: "roles.grant"}
	EndpointRoleRevoke  = contract.Endpoint[RoleChange, User]{Service: Service, Name: "roles.revoke"}
)

// Client calls the auth service.
type Client struct{ T contract.Transport }

// Login checks credentials and mints a session.
func (c Client) Login(ctx context.Context, cr Credentials) (Session, error) {
	return EndpointLogin.Call(ctx, c.T, cr)
}

// Register creates an account (when registration is open) and signs it in.
func (c Client) Register(ctx context.Context, cr Credentials) (Session, error) {
	return EndpointRegister.Call(ctx, c.T, cr)
}

// Logout revokes one token.
func (c Client) Logout(ctx context.Context, l Logout) error {
	_, err := EndpointLogout.Call(ctx, c.T, l)
	return err
}

// Users lists every account, for an administrator.
func (c Client) Users(ctx context.Context, actor Actor) (Users, error) {
	return EndpointUsersList.Call(ctx, c.T, ListUsers{Actor: actor})
}

// CreateUser creates an account for an administrator.
func (c Client) CreateUser(ctx context.Context, u CreateUser) (User, error) {
	return EndpointUsersCreate.Call(ctx, c.T, u)
}

// UpdateUser changes an account's state.
func (c Client) UpdateUser(ctx context.Context, u UpdateUser) (User, error) {
	return EndpointUsersUpdate.Call(ctx, c.T, u)
}

// GrantRole grants one role.
func (c Client) GrantRole(ctx context.Context, r RoleChange) (User, error) {
	return EndpointRoleGrant.Call(ctx, c.T, r)
}

// RevokeRole revokes one role.
func (c Client) RevokeRole(ctx context.Context, r RoleChange) (User, error) {
	return EndpointRoleRevoke.Call(ctx, c.T, r)
}

// Credentials sign in or sign up.
type Credentials struct {
	Email    string `json:"email"`
	Password string `json:"password"`
}

// User is a user as callers see it: never the password hash.
type User struct {
	ID        string    `json:"id"`
	Email     string    `json:"email"`
	Roles     []string  `json:"roles"`
	Disabled  bool      `json:"disabled"`
	CreatedAt time.Time `json:"created_at"`
}

// Session is a minted token and whom it is for.
type Session struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
	User      User      `json:"user"`
}

// Logout revokes one token.
type Logout struct {
	TokenID string    `json:"jti"`
	Until   time.Time `json:"until"`
	UserID  string    `json:"user_id"`
}

// Actor is who asks for an administrative request. Token is the caller's
// token: the auth service verifies it and acts on its email and roles,
// never on Email, which only tells the reader of a message who it claims to
// be. The edge fills both from the request's verified token.
type Actor struct {
	Email     string `json:"email"`
	RequestID string `json:"request_id,omitempty"`
	Token     string `json:"token"`
}

// ListUsers asks for every account.
type ListUsers struct {
	Actor Actor `json:"actor"`
}

// CreateUser is an administrator creating an account.
type CreateUser struct {
	Actor    Actor    `json:"actor"`
	Email    string   `json:"email"`
	Password string   `json:"password"`
	Roles    []string `json:"roles"`
}

// UpdateUser changes an account's state.
type UpdateUser struct {
	Actor    Actor  `json:"actor"`
	Email    string `json:"email"`
	Disabled *bool  `json:"disabled,omitempty"`
}

// RoleChange grants or revokes one role.
type RoleChange struct {
	Actor Actor  `json:"actor"`
	Email string `json:"email"`
	Role  string `json:"role"`
}

// Users is a list of users.
type Users struct {
	Users []User `json:"users"`
}

// Empty is an empty request or reply.
type Empty = contract.Empty
