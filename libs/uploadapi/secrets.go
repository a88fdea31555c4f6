package uploadapi

import (
	"context"
	"log/slog"
	"regexp"
	"time"

	"github.com/gnome-platform/gnome/libs/contract"
)

// Experiments' secrets: named values (API keys, passwords) that an
// experiment's owner and admins set and its actor reads (host operation
// secret.get). They are write-only: no reply ever carries a value, and
// the request that sets one is the only message that does.

// Endpoints of the upload service for secrets.
var (
	EndpointSecrets      = contract.Endpoint[SecretsQuery, Secrets]{Service: Service, Name: "secrets.list"}
	EndpointSecretSet    = contract.Endpoint[SecretSet, SecretResult]{Service: Service, Name: "secrets.set"}
	EndpointSecretDelete = contract.Endpoint[SecretDelete, Secret]{Service: Service, Name: "secrets.delete"}
)

// Limits of secrets.
const (
	// MaxSecretValue is the largest value, in bytes.
	MaxSecretValue = 8 << 10
	// MaxSecrets is the most secrets one experiment has.
	MaxSecrets = 32
)

// SecretNameSyntax is a secret's name: an upper-case letter, then up to 63
// upper-case letters, digits and '_', as environment variables are named.
var SecretNameSyntax = regexp.MustCompile(`^[A-Z][A-Z0-9_]{0,63}$`)

// States of a stored secret's key (Secret.Key).
const (
	// SecretKeyCurrent: sealed with the key of SECRET_KEY.
	SecretKeyCurrent = "current"
	// SecretKeyPrevious: sealed with the key of SECRET_KEY_PREVIOUS; it
	// opens, and is sealed again with the current key at the upload
	// service's next start.
	SecretKeyPrevious = "previous"
	// SecretKeyLost: sealed with a key this platform no longer has; the
	// actor cannot read it until it is set again.
	SecretKeyLost = "lost"
)

// Secret describes one secret, never its value.
type Secret struct {
	Name string `json:"name"`
	// Size is the value's length in bytes.
	Size      int       `json:"size"`
	CreatedAt time.Time `json:"created_at"`
	CreatedBy string    `json:"created_by"`
	UpdatedAt time.Time `json:"updated_at"`
	UpdatedBy string    `json:"updated_by"`
	// Key tells whether the value can be opened: SecretKeyCurrent,
	// SecretKeyPrevious or SecretKeyLost.
	Key string `json:"key"`
}

// SecretsQuery asks for the secrets of an experiment.
type SecretsQuery struct {
	Slug   string `json:"slug"`
	Caller Caller `json:"caller"`
}

// Secrets are an experiment's secrets, by name, with the limits.
type Secrets struct {
	Slug      string   `json:"slug"`
	Secrets   []Secret `json:"secrets"`
	MaxCount  int      `json:"max_count"`
	MaxValue  int      `json:"max_value_bytes"`
	NameRegex string   `json:"name_pattern"`
}

// SecretSet creates or replaces the secret Name of experiment Slug.
type SecretSet struct {
	Slug   string `json:"slug"`
	Name   string `json:"name"`
	Value  string `json:"value"`
	Caller Caller `json:"caller"`
}

// LogValue keeps the value out of any log line the request reaches.
func (r SecretSet) LogValue() slog.Value {
	return slog.GroupValue(slog.String("slug", r.Slug), slog.String("name", r.Name), slog.Int("size", len(r.Value)))
}

// SecretResult is the secret as set, and whether this request created it
// (false: it replaced a value).
type SecretResult struct {
	Secret  Secret `json:"secret"`
	Created bool   `json:"created"`
}

// SecretDelete removes the secret Name of experiment Slug; the reply is
// the secret that was removed.
type SecretDelete struct {
	Slug   string `json:"slug"`
	Name   string `json:"name"`
	Caller Caller `json:"caller"`
}

func (r *SecretsQuery) CallerOf() *Caller { return &r.Caller }
func (r *SecretSet) CallerOf() *Caller    { return &r.Caller }
func (r *SecretDelete) CallerOf() *Caller { return &r.Caller }

// ListSecrets lists an experiment's secrets, without values.
func (c Client) ListSecrets(ctx context.Context, req SecretsQuery) (Secrets, error) {
	return EndpointSecrets.Call(ctx, c.T, req)
}

// SetSecret creates or replaces a secret.
func (c Client) SetSecret(ctx context.Context, req SecretSet) (SecretResult, error) {
	return EndpointSecretSet.Call(ctx, c.T, req)
}

// DeleteSecret removes a secret.
func (c Client) DeleteSecret(ctx context.Context, req SecretDelete) (Secret, error) {
	return EndpointSecretDelete.Call(ctx, c.T, req)
}
