package authapi

import (
	"context"

	"github.com/gnome-platform/gnome/libs/contract"
)

// EndpointPasswordChange changes the signed-in user's own password.
var EndpointPasswordChange = contract.Endpoint[PasswordChange, Session]{Service: Service, Name: "password.change"}

// PasswordChange is a signed-in user (Actor's token) changing their
// password; Current must be right. Every token issued before ends (the
// user's token version is raised); the reply is a new session for the
// caller, so that only the device that changed it stays signed in.
type PasswordChange struct {
	Actor   Actor  `json:"actor"`
	Current string `json:"current_password"`
	New     string `json:"new_password"`
}

// ChangePassword changes the caller's own password.
func (c Client) ChangePassword(ctx context.Context, r PasswordChange) (Session, error) {
	return EndpointPasswordChange.Call(ctx, c.T, r)
}
