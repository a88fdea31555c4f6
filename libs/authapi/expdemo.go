package authapi

import (
	"context"

	"github.com/gnome-platform/gnome/libs/contract"
)

// EndpointExpDemo signs a demo account of an experiment in without a
// password, where its manifest says allow_demo_access (sub_auth
// demo_users). The session's token is of kind authn.KindDemo.
var EndpointExpDemo = contract.Endpoint[ExpDemo, Session]{Service: Service, Name: "exp.demo"}

// ExpDemo asks for a demo session on slug's origin: Email is one of the
// manifest's demo users, or "" for the first.
type ExpDemo struct {
	Slug  string `json:"slug"`
	Email string `json:"email,omitempty"`
}

// ExpDemo signs a demo account in.
func (c Client) ExpDemo(ctx context.Context, r ExpDemo) (Session, error) {
	return EndpointExpDemo.Call(ctx, c.T, r)
}
