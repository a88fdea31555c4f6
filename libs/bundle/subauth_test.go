package bundle_test

import (
	"strings"
	"testing"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bundle"
)

// TestSubAuthRefusals: every bad sub_auth is refused, naming its field and,
// where the schema's words would not, why.
func TestSubAuthRefusals(t *testing.T) {
	for _, tc := range []struct {
		name, subAuth, field, says string
	}{
		{"oauth", `{"enabled": true, "strategy": "oauth"}`, "/sub_auth/strategy", "never built"},
		{"unknown strategy", `{"enabled": true, "strategy": "saml"}`, "/sub_auth/strategy", "experiment_users"},
		{"strategy not a string", `{"strategy": 3}`, "/sub_auth/strategy", ""},
		{"enabled not a boolean", `{"enabled": "yes"}`, "/sub_auth/enabled", ""},
		{"unknown field", `{"enabled": true, "stratgy": "hybrid"}`, "/sub_auth/stratgy", "not an accepted name"},
		{"collection name with a dot", `{"collection_name": "users.all"}`, "/sub_auth/collection_name", ""},
		{"collection name empty", `{"collection_name": ""}`, "/sub_auth/collection_name", ""},
		{"reserved cookie name", `{"session_cookie_name": "gnome_session"}`, "/sub_auth/session_cookie_name", "reserved"},
		{"reserved cookie name, other case", `{"session_cookie_name": "GNOME_participant"}`, "/sub_auth/session_cookie_name", "reserved"},
		{"reserved __Host- cookie name", `{"session_cookie_name": "__Host-gnome_session"}`, "/sub_auth/session_cookie_name", "reserved"},
		{"reserved __Secure- cookie name", `{"session_cookie_name": "__Secure-gnomeX"}`, "/sub_auth/session_cookie_name", "reserved"},
		{"cookie name with a space", `{"session_cookie_name": "my session"}`, "/sub_auth/session_cookie_name", ""},
		{"cookie name with a semicolon", `{"session_cookie_name": "a;b"}`, "/sub_auth/session_cookie_name", ""},
		{"cookie name with CR LF", `{"session_cookie_name": "a\r\nSet-Cookie: x"}`, "/sub_auth/session_cookie_name", ""},
		{"cookie name too long", `{"session_cookie_name": "` + strings.Repeat("c", 65) + `"}`, "/sub_auth/session_cookie_name", ""},
		{"ttl too short", `{"session_ttl_seconds": 59}`, "/sub_auth/session_ttl_seconds", ""},
		{"ttl too long", `{"session_ttl_seconds": 31536001}`, "/sub_auth/session_ttl_seconds", ""},
		{"ttl not an integer", `{"session_ttl_seconds": 90.5}`, "/sub_auth/session_ttl_seconds", ""},
		{"registration not a boolean", `{"allow_registration": 1}`, "/sub_auth/allow_registration", ""},
		{"demo users not a list", `{"demo_users": {"email": "a@example.com"}}`, "/sub_auth/demo_users", ""},
		{"demo user email not an email", `{"demo_users": [{"email": "demo at example"}]}`, "/sub_auth/demo_users/0/email", ""},
		{"demo user with an unknown field", `{"demo_users": [{"email": "d@example.com", "pasword": "x"}]}`, "/sub_auth/demo_users/0/pasword", ""},
		{"demo user with an empty password", `{"demo_users": [{"email": "d@example.com", "password": ""}]}`, "/sub_auth/demo_users/0/password", ""},
		{"demo users sharing an email", `{"demo_users": [{"email": "d@example.com"}, {"email": "D@example.com"}]}`, "/sub_auth/demo_users/1/email", "already"},
		{"too many demo users", `{"demo_users": [` + strings.Repeat(`{},`, 50) + `{}]}`, "/sub_auth/demo_users", ""},
		{"bad seed strategy", `{"demo_user_seed_strategy": "sometimes"}`, "/sub_auth/demo_user_seed_strategy", ""},
		{"sub_auth not an object", `true`, "/sub_auth", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := bundle.ParseManifest([]byte(`{"slug": "demo", "name": "X", "sub_auth": ` + tc.subAuth + `}`))
			ae := wantCode(t, err, apierr.CodeManifestInvalid, tc.says)
			if ae.Field != tc.field {
				t.Errorf("field %q, want %q (message %q)", ae.Field, tc.field, ae.Message)
			}
			if !strings.Contains(ae.Message, tc.field) {
				t.Errorf("message %q does not name %s", ae.Message, tc.field)
			}
		})
	}
}

// TestSubAuthAccepted: the fields are read with the original's defaults,
// its strategy name app_users is the old name of experiment_users, and
// what is not active yet is said in a warning.
func TestSubAuthAccepted(t *testing.T) {
	m, w, err := bundle.ParseManifest([]byte(`{"slug": "tickets", "name": "T", "sub_auth": {"enabled": true, "strategy": "app_users",
		"allow_registration": true, "session_ttl_seconds": 3600.0, "session_cookie_name": "ticket_session",
		"demo_users": [{"email": "demo@example.com", "password": "demo-pass", "extra_data": {"store_id": 1}}], "allow_demo_access": true}}`))
	if err != nil {
		t.Fatal(err)
	}
	sa := m.SubAuth
	if !sa.On() || sa.Strategy != bundle.StrategyExperimentUsers || sa.CollectionName != "users" || sa.SessionTTLSeconds != 3600 ||
		!sa.AllowRegistration || !sa.AllowDemoAccess || !sa.LinksPlatformUsers() || sa.ReservedCookie() != "ticket_session" {
		t.Errorf("sub_auth read as %+v", sa)
	}
	if len(sa.DemoUsers) != 1 || sa.DemoUsers[0].Role != "user" || sa.DemoUsers[0].Password != "demo-pass" || sa.DemoUsers[0].ExtraData["store_id"] != float64(1) {
		t.Errorf("demo users %+v", sa.DemoUsers)
	}
	if !sa.Uses(bundle.StrategyExperimentUsers) || sa.Uses(bundle.StrategyAnonymousSession) {
		t.Errorf("Uses: %+v", sa)
	}
	// experiment_users and its demo accounts work: nothing to warn of.
	if len(w) != 0 {
		t.Errorf("warnings %+v, want none", w)
	}

	m, w, err = bundle.ParseManifest([]byte(`{"slug": "mix", "name": "M", "sub_auth": {"enabled": true, "strategy": "hybrid", "link_platform_users": false,
		"oauth_providers": [{"name": "google"}], "user_id_field": "app_user_id"}}`))
	if err != nil {
		t.Fatal(err)
	}
	if !m.SubAuth.Uses(bundle.StrategyAnonymousSession) || !m.SubAuth.Uses(bundle.StrategyExperimentUsers) || m.SubAuth.LinksPlatformUsers() {
		t.Errorf("hybrid read as %+v", m.SubAuth)
	}
	var fields []string
	for _, x := range w {
		fields = append(fields, x.Field)
	}
	// hybrid works, link_platform_users too: only the ignored fields are said.
	if strings.Join(fields, " ") != "/sub_auth/oauth_providers /sub_auth/user_id_field" {
		t.Errorf("warnings on %v", fields)
	}
	// Demo accounts where the experiment has no accounts are said.
	_, w, err = bundle.ParseManifest([]byte(`{"slug": "anon", "name": "A", "sub_auth": {"enabled": true, "strategy": "anonymous_session",
		"demo_users": [{"email": "demo@example.com"}], "allow_demo_access": true}}`))
	if err != nil || len(w) != 1 || w[0].Field != "/sub_auth/demo_users" || !strings.Contains(w[0].Message, "not created") {
		t.Errorf("demo users of an anonymous_session experiment: %+v %v", w, err)
	}
	_, w, err = bundle.ParseManifest([]byte(`{"slug": "nod", "name": "N", "sub_auth": {"enabled": true, "allow_demo_access": true}}`))
	if err != nil || len(w) != 1 || w[0].Field != "/sub_auth/allow_demo_access" {
		t.Errorf("demo access without demo users: %+v %v", w, err)
	}

	// Disabled: nothing is active, nothing to warn of, and its cookie name
	// is the experiment's to use.
	m, w, err = bundle.ParseManifest([]byte(`{"slug": "off", "name": "O", "sub_auth": {"enabled": false, "session_cookie_name": "sess"}}`))
	if err != nil || len(w) != 0 || m.SubAuth.On() || m.SubAuth.ReservedCookie() != "" || m.SubAuth.Uses(bundle.StrategyExperimentUsers) {
		t.Errorf("disabled: %+v %v %v", m.SubAuth, w, err)
	}
	var none *bundle.SubAuth
	if none.On() || none.ReservedCookie() != "" {
		t.Error("a missing sub_auth reads as on")
	}
}

func TestReservedCookieName(t *testing.T) {
	for name, want := range map[string]bool{
		"gnome_session": true, "__Host-gnome_session": true, "gnome_participant": true, "Gnome_x": true,
		"__Secure-gnome_p": true, "__host-GNOME": true, "gnome": false, "gnomes": false, "my_gnome_session": false,
		"session": false, "__Host-session": false, "token": false,
	} {
		if got := bundle.ReservedCookieName(name); got != want {
			t.Errorf("ReservedCookieName(%q) = %v, want %v", name, got, want)
		}
	}
}
