// Package passwords hashes passwords and decides which are acceptable.
package passwords

//go:generate go run ./gen

import (
	_ "embed"
	"errors"
	"strings"
	"sync"
	"unicode/utf8"

	"golang.org/x/crypto/bcrypt"
)

// Cost is the bcrypt cost: about a tenth of a second per hash here.
const Cost = 11

// MinLength and MaxLength bound passwords (bcrypt reads 72 bytes at most).
const (
	MinLength = 8
	MaxLength = 72
)

//go:embed common-passwords.txt
var commonText string

var common = func() map[string]bool {
	m := map[string]bool{}
	for _, p := range strings.Split(commonText, "\n") {
		if p = strings.TrimSpace(p); p != "" {
			m[p] = true
		}
	}
	return m
}()

// CommonCount is how many common passwords are refused.
func CommonCount() int { return len(common) }

// IsCommon reports whether p is on the list of common passwords (case does
// not matter).
func IsCommon(p string) bool { return common[strings.ToLower(p)] }

// Check returns why p may not be used, or nil.
func Check(p string) error {
	switch n := utf8.RuneCountInString(p); {
	case !utf8.ValidString(p):
		return errors.New("password must be valid UTF-8")
	case n < MinLength:
		return errors.New("password must be at least 8 characters")
	case len(p) > MaxLength:
		return errors.New("password must be at most 72 bytes")
	case IsCommon(p):
		return errors.New("password is too common; choose another")
	}
	return nil
}

// Hash hashes p with bcrypt at Cost.
func Hash(p string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(p), Cost)
	return string(h), err
}

// dummy is compared against when the email is unknown, so that an unknown
// email and a wrong password take the same time.
// It is made on first use, not at start.
var dummy = sync.OnceValue(func() []byte {
	h, _ := bcrypt.GenerateFromPassword([]byte("gnome-dummy-password-for-timing"), Cost)
	return h
})

// Verify reports whether p matches hash; with hash "" it spends the same
// time and reports false.
func Verify(hash, p string) bool {
	if hash == "" {
		_ = bcrypt.CompareHashAndPassword(dummy(), []byte(p))
		return false
	}
	return bcrypt.CompareHashAndPassword([]byte(hash), []byte(p)) == nil
}
