package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// DefaultURL is the server a login talks to without --url: what
// `make run` serves.
const DefaultURL = "http://127.0.0.1:8080"

// Settings is the client's stored sign-in: never a password, only a
// personal API token the server can revoke.
type Settings struct {
	URL       string `json:"url"`
	Email     string `json:"email,omitempty"`
	Token     string `json:"token"`
	TokenID   string `json:"token_id,omitempty"`
	TokenName string `json:"token_name,omitempty"`
}

// configPath is where the settings are kept: the user's config directory
// (XDG_CONFIG_HOME or ~/.config on Linux, ~/Library/Application Support on
// macOS, %AppData% on Windows), in gnome/config.json.
func configPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find the user's config directory: %w", err)
	}
	return filepath.Join(dir, "gnome", "config.json"), nil
}

// loadSettings reads the stored settings; ok is false when there are none.
func loadSettings() (s Settings, ok bool, err error) {
	p, err := configPath()
	if err != nil {
		return Settings{}, false, err
	}
	b, err := os.ReadFile(p)
	if errors.Is(err, fs.ErrNotExist) {
		return Settings{}, false, nil
	}
	if err != nil {
		return Settings{}, false, fmt.Errorf("read %s: %w", p, err)
	}
	if err := json.Unmarshal(b, &s); err != nil {
		return Settings{}, false, fmt.Errorf("read %s: %w (run gnome login again)", p, err)
	}
	return s, s.Token != "", nil
}

// saveSettings writes the settings readable by the user alone: the file
// holds a token that acts as them.
func saveSettings(s Settings) (string, error) {
	p, err := configPath()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return "", fmt.Errorf("create %s: %w", filepath.Dir(p), err)
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encode the settings: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".config-*.json")
	if err != nil {
		return "", fmt.Errorf("write %s: %w", p, err)
	}
	defer os.Remove(tmp.Name())
	// CreateTemp makes the file 0600 already; Chmod says so for any umask.
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return "", fmt.Errorf("write %s: %w", p, err)
	}
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return "", fmt.Errorf("write %s: %w", p, err)
	}
	if err := tmp.Close(); err != nil {
		return "", fmt.Errorf("write %s: %w", p, err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return "", fmt.Errorf("write %s: %w", p, err)
	}
	return p, nil
}

// credentials are the server and token every verb but login uses: the
// stored ones, with GNOME_URL and GNOME_TOKEN taking precedence.
func credentials() (Settings, error) {
	s, ok, err := loadSettings()
	if err != nil && os.Getenv("GNOME_TOKEN") == "" {
		return Settings{}, err
	}
	if !ok {
		s = Settings{}
	}
	if u := os.Getenv("GNOME_URL"); u != "" {
		s.URL = u
	}
	if t := os.Getenv("GNOME_TOKEN"); t != "" {
		s.Token = t
	}
	if s.Token == "" {
		return Settings{}, errNotSignedIn
	}
	if s.URL == "" {
		s.URL = DefaultURL
	}
	s.URL = strings.TrimRight(s.URL, "/")
	return s, nil
}
