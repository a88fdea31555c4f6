package embedded

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/config"
)

// CredentialsDir is where an embedded server keeps its users' credentials,
// relative to its NATS directory (DATA_DIR/nats/credentials): one file per
// bus user, <user>.env, holding NATS_USER and NATS_PASSWORD (see
// bus.CredentialsFile).
const CredentialsDir = "credentials"

// Credentials are the passwords of the embedded server's bus users.
type Credentials struct {
	// Dir holds one <user>.env file per user, mode 0600.
	Dir       string
	passwords map[string]string
}

// LoadCredentials reads the users' credentials from dir, generating those
// missing (first start) and tightening files others could read.
func LoadCredentials(dir string) (*Credentials, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create nats credentials dir: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("protect nats credentials dir: %w", err)
	}
	c := &Credentials{Dir: dir, passwords: map[string]string{}}
	for _, user := range bus.Users {
		path := c.File(user)
		a, err := bus.ReadCredentialsFile(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			a = config.NATSAuth{User: user, Password: newPassword()}
			if err := bus.WriteCredentialsFile(path, a); err != nil {
				return nil, err
			}
		case err != nil:
			return nil, err
		case a.User != user || len(a.Password) < 16:
			return nil, fmt.Errorf("nats credentials %s: want NATS_USER=%s and a NATS_PASSWORD of 16 characters or more; delete the file to generate a new one", path, user)
		default:
			if err := os.Chmod(path, 0o600); err != nil {
				return nil, fmt.Errorf("protect nats credentials %s: %w", path, err)
			}
		}
		c.passwords[user] = a.Password
	}
	return c, nil
}

// File is where user's credentials are kept.
func (c *Credentials) File(user string) string { return filepath.Join(c.Dir, user+".env") }

// Auth is how user authenticates to the embedded server.
func (c *Credentials) Auth(user string) config.NATSAuth {
	return config.NATSAuth{User: user, Password: c.passwords[user]}
}

// serverUsers are the users the server accepts, each with its permissions
// from the platform's table (libs/bus/access.go).
func (c *Credentials) serverUsers() ([]*server.User, error) {
	var out []*server.User
	for _, user := range bus.Users {
		a, ok := bus.Permissions(user)
		if !ok {
			return nil, fmt.Errorf("no bus permissions for user %s", user)
		}
		u := &server.User{Username: user, Password: c.passwords[user]}
		if !a.All {
			u.Permissions = &server.Permissions{
				Publish:   &server.SubjectPermission{Allow: a.Publish},
				Subscribe: &server.SubjectPermission{Allow: a.Subscribe},
				Response:  &server.ResponsePermission{MaxMsgs: 1, Expires: bus.ReplyWindow},
			}
		}
		out = append(out, u)
	}
	return out, nil
}

func newPassword() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
