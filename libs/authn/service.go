package authn

import "time"

// ServiceTokenTTL bounds the tokens a platform process mints for work it
// does on its own: long enough for the requests it makes next, short
// enough that one that leaked is soon useless.
const ServiceTokenTTL = 5 * time.Minute

// MintService signs a short-lived platform token for a platform process
// acting on its own behalf through other services (gnome standalone
// installing its package as the package's owner). Only a process holding
// SECRET_KEY can: the services verify it like any user's token, so a name
// in a message is never enough. sub.ID should name the process
// ("service:<name>"), so that the token is told apart from a user's.
func (s *Signer) MintService(sub Subject, now time.Time) (string, *Claims, error) {
	return s.mint(sub, Audience, "", now, now.Add(ServiceTokenTTL))
}
