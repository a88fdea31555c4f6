// Package authapi is the auth service's contract on the bus: its subjects and
// the shapes of its requests and replies (schemas/messages/auth-*.json).
package authapi

import (
	"time"

	"github.com/gnome-platform/gnome/libs/bus"
)

// Service is the auth service's name on the bus.
const Service = "auth"

// Endpoints of the auth service.
const (
	EndpointLogin       = "login"
	EndpointRegister    = "register"
	EndpointLogout      = "logout"
	EndpointUsersList   = "users.list"
	EndpointUsersCreate = "users.create"
	EndpointUsersUpdate = "users.update"
	EndpointRoleGrant   = "roles.grant"
	EndpointRoleRevoke  = "roles.revoke"
)

// Subject is the request subject of an auth endpoint.
func Subject(endpoint string) string { return bus.Subject(Service, endpoint) }

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

// Actor is who asks for an administrative change, for the audit log. The
// edge fills it from the verified token.
type Actor struct {
	Email     string `json:"email"`
	RequestID string `json:"request_id,omitempty"`
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

// Empty is an empty reply.
type Empty struct{}
