package authapi

import (
	"context"

	"github.com/gnome-platform/gnome/libs/contract"
)

// Endpoints of the hand-off of a visitor's identity to an experiment's own
// origin (see docs/architecture.md, "Each experiment in its own origin").
var (
	EndpointExperimentToken = contract.Endpoint[ExperimentTokenRequest, Session]{Service: Service, Name: "experiment.token"}
	EndpointEndSession      = contract.Endpoint[EndSession, Empty]{Service: Service, Name: "session.end"}
)

// ExperimentTokenRequest asks for slug's experiment token on behalf of the
// holder of a platform token; the auth service verifies the token.
type ExperimentTokenRequest struct {
	Token string `json:"token"`
	Slug  string `json:"slug"`
}

// EndSession signs out the holder of Token (a platform token, or with Slug
// set an experiment token of that slug): the token and the platform session
// it belongs to stop working everywhere.
type EndSession struct {
	Token string `json:"token"`
	Slug  string `json:"slug,omitempty"`
}

// ExperimentToken mints slug's experiment token for a platform token's holder.
func (c Client) ExperimentToken(ctx context.Context, r ExperimentTokenRequest) (Session, error) {
	return EndpointExperimentToken.Call(ctx, c.T, r)
}

// EndSession ends the session a token belongs to.
func (c Client) EndSession(ctx context.Context, r EndSession) error {
	_, err := EndpointEndSession.Call(ctx, c.T, r)
	return err
}
