package bundle

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/gnome-platform/gnome/libs/apierr"
)

// Strategies of sub_auth.
const (
	// StrategyExperimentUsers is accounts of the experiment alone (the
	// original's app_users).
	StrategyExperimentUsers = "experiment_users"
	// StrategyAnonymousSession gives every visitor a stable participant ID.
	StrategyAnonymousSession = "anonymous_session"
	// StrategyHybrid is platform users, experiment users and anonymous
	// participants side by side.
	StrategyHybrid = "hybrid"
)

// Defaults of sub_auth, the original's.
const (
	DefaultSubAuthCollection = "users"
	DefaultSessionTTLSeconds = 86400
)

// SubAuth is manifest.json's sub_auth: the experiment's own participants
// and accounts, on its own origin. ParseManifest fills in the defaults and
// turns the original's strategy name app_users into experiment_users.
type SubAuth struct {
	Enabled bool `json:"enabled"`
	// Strategy is one of the Strategy constants.
	Strategy string `json:"strategy,omitempty"`
	// CollectionName is the base name of the accounts' collection.
	CollectionName string `json:"collection_name,omitempty"`
	// SessionCookieName is the session cookie's name on the experiment's
	// origin when the manifest gives one; never a reserved name.
	SessionCookieName string `json:"session_cookie_name,omitempty"`
	SessionTTLSeconds int    `json:"session_ttl_seconds,omitempty"`
	AllowRegistration bool   `json:"allow_registration,omitempty"`
	// LinkPlatformUsers is nil when not given (true, the original's
	// default): read it with LinksPlatformUsers.
	LinkPlatformUsers *bool      `json:"link_platform_users,omitempty"`
	DemoUsers         []DemoUser `json:"demo_users,omitempty"`
	AllowDemoAccess   bool       `json:"allow_demo_access,omitempty"`

	// The original's finer demo and naming settings, kept as given.
	AutoLinkPlatformDemo *bool  `json:"auto_link_platform_demo,omitempty"`
	DemoUserSeedStrategy string `json:"demo_user_seed_strategy,omitempty"`
	AnonymousUserPrefix  string `json:"anonymous_user_prefix,omitempty"`
	UserIDField          string `json:"user_id_field,omitempty"`
	OAuthProviders       []any  `json:"oauth_providers,omitempty"`
}

// UnmarshalJSON takes session_ttl_seconds in any JSON spelling of an
// integer (3600.0), as the schema does.
func (s *SubAuth) UnmarshalJSON(data []byte) error {
	type plain SubAuth
	var v struct {
		plain
		SessionTTLSeconds json.RawMessage `json:"session_ttl_seconds"`
	}
	if err := json.Unmarshal(data, &v); err != nil {
		return err
	}
	*s = SubAuth(v.plain)
	if len(v.SessionTTLSeconds) > 0 && string(v.SessionTTLSeconds) != "null" {
		n, err := integer(v.SessionTTLSeconds)
		if err != nil {
			return err
		}
		s.SessionTTLSeconds = n
	}
	return nil
}

// DemoUser is one demo account of sub_auth.demo_users.
type DemoUser struct {
	Email    string `json:"email,omitempty"`
	Password string `json:"password,omitempty"`
	// Role is the account's role in the experiment; "user" when not given.
	Role           string         `json:"role,omitempty"`
	AutoCreate     *bool          `json:"auto_create,omitempty"`
	LinkToPlatform bool           `json:"link_to_platform,omitempty"`
	ExtraData      map[string]any `json:"extra_data,omitempty"`
}

// On reports whether the experiment has sub_auth turned on.
func (s *SubAuth) On() bool { return s != nil && s.Enabled }

// Uses reports whether sub_auth is on with a strategy that includes
// strategy: hybrid includes the other two.
func (s *SubAuth) Uses(strategy string) bool {
	return s.On() && (s.Strategy == strategy || s.Strategy == StrategyHybrid)
}

// LinksPlatformUsers is link_platform_users, true when not given.
func (s *SubAuth) LinksPlatformUsers() bool {
	return s.LinkPlatformUsers == nil || *s.LinkPlatformUsers
}

// ReservedCookie is the session cookie name the manifest gives when
// sub_auth is on, which the platform keeps from the experiment's actor as
// it keeps its own; "" otherwise.
func (s *SubAuth) ReservedCookie() string {
	if !s.On() {
		return ""
	}
	return s.SessionCookieName
}

// Accounts reports whether the experiment has accounts of its own
// (experiment_users, or hybrid).
func (s *SubAuth) Accounts() bool { return s.Uses(StrategyExperimentUsers) }

// Participants reports whether anonymous visitors get a stable participant
// ID (anonymous_session, or hybrid).
func (s *SubAuth) Participants() bool { return s.Uses(StrategyAnonymousSession) }

// TTL is session_ttl_seconds as a duration (its default when not given).
func (s *SubAuth) TTL() time.Duration {
	if s == nil || s.SessionTTLSeconds <= 0 {
		return DefaultSessionTTLSeconds * time.Second
	}
	return time.Duration(s.SessionTTLSeconds) * time.Second
}

// SubAuthOf is the sub_auth of a stored manifest's JSON text, with its
// defaults (the original's app_users read as experiment_users); disabled
// when the manifest has none or cannot be read.
func SubAuthOf(manifest []byte) *SubAuth {
	var m struct {
		SubAuth *SubAuth `json:"sub_auth"`
	}
	if json.Unmarshal(manifest, &m) != nil || m.SubAuth == nil {
		return &SubAuth{}
	}
	m.SubAuth.setDefaults()
	return m.SubAuth
}

func (s *SubAuth) setDefaults() {
	switch s.Strategy {
	case "", "app_users":
		s.Strategy = StrategyExperimentUsers
	}
	if s.CollectionName == "" {
		s.CollectionName = DefaultSubAuthCollection
	}
	if s.SessionTTLSeconds == 0 {
		s.SessionTTLSeconds = DefaultSessionTTLSeconds
	}
	for i := range s.DemoUsers {
		if s.DemoUsers[i].Role == "" {
			s.DemoUsers[i].Role = "user"
		}
	}
}

// subAuthBuilt are the strategies this platform version acts on; sub_auth
// with another is accepted and stored, with a warning that it is not active
// yet. Each strategy is added here when it works end to end.
var subAuthBuilt = map[string]bool{StrategyExperimentUsers: true, StrategyAnonymousSession: true, StrategyHybrid: true}

// warnings are what the uploader should know of sub_auth: the parts not
// active yet, settings that have no effect, and the original's fields that
// are ignored.
func (s *SubAuth) warnings() []Warning {
	if s == nil {
		return nil
	}
	var w []Warning
	if s.Enabled && !subAuthBuilt[s.Strategy] {
		w = append(w, Warning{Field: "/sub_auth/strategy", Message: fmt.Sprintf(
			"sub_auth is checked and kept, but this version of the platform does not act on the strategy %s yet: "+
				"until it does, visitors reach the experiment as without sub_auth", s.Strategy)})
	}
	switch {
	case s.Enabled && (len(s.DemoUsers) > 0 || s.AllowDemoAccess) && !s.Accounts():
		w = append(w, Warning{Field: "/sub_auth/demo_users", Message: "demo accounts are accounts of the experiment: " +
			"with the strategy " + s.Strategy + " they are not created, and there is no demo sign-in (use experiment_users or hybrid)"})
	case s.Enabled && s.AllowDemoAccess && len(s.DemoUsers) == 0:
		w = append(w, Warning{Field: "/sub_auth/allow_demo_access", Message: "allow_demo_access without demo_users: there is no demo account to sign in as"})
	}
	if len(s.OAuthProviders) > 0 {
		w = append(w, Warning{Field: "/sub_auth/oauth_providers", Message: "oauth_providers is ignored: the original platform declared the oauth strategy and never built it"})
	}
	if s.UserIDField != "" {
		w = append(w, Warning{Field: "/sub_auth/user_id_field", Message: "user_id_field named a claim of the original platform's tokens; it is accepted and ignored"})
	}
	return w
}

// ReservedCookieName reports whether name is one of the platform's cookie
// names on an experiment's origin (gnome_*, __Host-gnome*, __Secure-gnome*,
// in any case), which an experiment can neither configure nor set.
func ReservedCookieName(name string) bool {
	n := strings.ToLower(name)
	for _, p := range []string{"gnome_", "__host-gnome", "__secure-gnome"} {
		if strings.HasPrefix(n, p) {
			return true
		}
	}
	return false
}

// checkSubAuth refuses, before the schema does, the values of sub_auth whose
// schema error would not say why: the oauth strategy, a reserved cookie
// name, and demo users sharing an email.
func checkSubAuth(doc any) error {
	obj, _ := doc.(map[string]any)
	sa, _ := obj["sub_auth"].(map[string]any)
	if sa == nil {
		return nil
	}
	invalid := func(field, format string, args ...any) error {
		return apierr.New(apierr.CodeManifestInvalid, "manifest.json is invalid: %s: %s", field, fmt.Sprintf(format, args...)).OnField(field)
	}
	if st, _ := sa["strategy"].(string); st == "oauth" {
		return invalid("/sub_auth/strategy", "oauth is not supported: the original platform declared it and never built it; "+
			"use %s, %s or %s", StrategyExperimentUsers, StrategyAnonymousSession, StrategyHybrid)
	}
	if name, ok := sa["session_cookie_name"].(string); ok && ReservedCookieName(name) {
		return invalid("/sub_auth/session_cookie_name", "%q is reserved by the platform (names starting with gnome_, __Host-gnome or __Secure-gnome)", name)
	}
	users, _ := sa["demo_users"].([]any)
	seen := map[string]int{}
	for i, u := range users {
		m, _ := u.(map[string]any)
		email, _ := m["email"].(string)
		if email == "" {
			continue
		}
		key := strings.ToLower(email)
		if j, dup := seen[key]; dup {
			return invalid(fmt.Sprintf("/sub_auth/demo_users/%d/email", i), "%q is already the email of demo user %d", email, j)
		}
		seen[key] = i
	}
	return nil
}
