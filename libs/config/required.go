package config

import (
	"errors"
	"slices"
)

// Binaries are the separately deployed service binaries; "gnome" (the
// all-in-one server) is known to RequiredInProduction as well.
var Binaries = []string{"edge", "auth", "upload", "export", "actorworker"}

// required is one setting a binary cannot start without in production, and
// how a loaded Config shows it was given.
type required struct {
	name string
	set  func(*Config) bool
	// binaries needing it; nil means every binary.
	binaries []string
}

// requiredInProduction is the one table of what each binary requires in
// production: RequireFor enforces it, and the deployment files are tested
// against it (deploy/deploy_test.go), so a new requirement reaches both. A
// setting is required only where it is used: the admin password only
// where the first admin is created. Bus credentials are not listed: a
// binary may read them from the environment or from DATA_DIR's generated
// file (svc.BusAuth, which refuses production without either).
var requiredInProduction = []required{
	{name: "NATS_URL", set: func(c *Config) bool { return c.NATSURL != "" }, binaries: Binaries},
	{name: "MONGO_URI", set: func(c *Config) bool { return c.MongoURI != "" }, binaries: Binaries},
	// Every binary opens sealed secrets or checks tokens with it, and
	// svc.Run refuses to start without it in production.
	{name: "SECRET_KEY", set: func(c *Config) bool { return c.SecretKey != "" }},
	// auth creates the first admin; `gnome serve` runs auth inside.
	{name: "ADMIN_PASSWORD", set: func(c *Config) bool { return c.AdminPassword != "" }, binaries: []string{"auth", "gnome"}},
}

// RequiredInProduction lists the settings binary (a name of Binaries, or
// "gnome") cannot start without in production.
func RequiredInProduction(binary string) []string {
	var out []string
	for _, r := range requiredInProduction {
		if r.binaries == nil || slices.Contains(r.binaries, binary) {
			out = append(out, r.name)
		}
	}
	return out
}

// RequireFor checks, in production, that every setting binary requires was
// given; outside production it accepts anything.
func (c *Config) RequireFor(binary string) error { return errors.Join(c.missingFor(binary)...) }

// missingFor is RequireFor's errors, each an *Error.
func (c *Config) missingFor(binary string) []error {
	if !c.IsProduction() {
		return nil
	}
	var errs []error
	for _, r := range requiredInProduction {
		if (r.binaries == nil || slices.Contains(r.binaries, binary)) && !r.set(c) {
			errs = append(errs, &Error{r.name, "is required in production by " + binary})
		}
	}
	return errs
}

// SharedSettings are the settings more than one binary reads, which must
// hold the same value in each of them: the edge decides the routes and the
// upload limit, auth and upload enforce them. Deployments give each to
// every binary listed (the deployment test checks they agree).
var SharedSettings = map[string][]string{
	"ENABLE_REGISTRATION": {"edge", "auth"},
	"MAX_UPLOAD_SIZE_MB":  {"edge", "upload"},
}
