package bundle

import (
	"strings"
	"unicode/utf8"

	"github.com/gnome-platform/gnome/libs/apierr"
)

const (
	// maxNameLen bounds an entry's name, and with MaxEntries the memory the
	// central directory can take.
	maxNameLen = 1024
	// maxComponentLen is the longest file or folder name most file systems take.
	maxComponentLen = 255
)

// normaliseName checks an entry's name as the archive stores it and returns
// its normal form: components joined by single slashes, without empty or "."
// components and without a trailing slash. dir reports a trailing slash. An
// empty path with dir set names the archive's root ("./").
//
// Nothing that could mean something else to another unpacker is accepted:
// "..", absolute paths, backslashes (a separator on Windows), colons (drive
// letters and NTFS streams) and control characters are refused, not repaired.
func normaliseName(raw string) (path string, dir bool, err *apierr.Error) {
	switch {
	case raw == "":
		return "", false, apierr.New(apierr.CodeBundleBadName, "an entry has an empty name")
	case len(raw) > maxNameLen:
		return "", false, apierr.New(apierr.CodeBundleBadName, "entry %.60q...: the name is %d bytes long, over the limit of %d", raw, len(raw), maxNameLen)
	case !utf8.ValidString(raw):
		return "", false, apierr.New(apierr.CodeBundleBadName, "entry %q: the name is not valid UTF-8", raw)
	}
	for _, r := range raw {
		if r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0) {
			return "", false, apierr.New(apierr.CodeBundleBadName, "entry %q: the name holds a control character", raw)
		}
	}
	switch {
	case strings.ContainsRune(raw, '\\'):
		return "", false, apierr.New(apierr.CodeBundleUnsafePath, "entry %q: backslashes are not allowed in names (use /)", raw)
	case len(raw) >= 2 && raw[1] == ':' && isASCIILetter(raw[0]):
		return "", false, apierr.New(apierr.CodeBundleUnsafePath, "entry %q: the name starts with a drive letter", raw)
	case strings.ContainsRune(raw, ':'):
		return "", false, apierr.New(apierr.CodeBundleUnsafePath, "entry %q: colons are not allowed in names", raw)
	case raw[0] == '/':
		return "", false, apierr.New(apierr.CodeBundleUnsafePath, "entry %q: absolute paths are not allowed", raw)
	}
	dir = strings.HasSuffix(raw, "/")
	parts := make([]string, 0, strings.Count(raw, "/")+1)
	for _, p := range strings.Split(raw, "/") {
		switch {
		case p == "" || p == ".":
			continue
		case p == "..":
			return "", false, apierr.New(apierr.CodeBundleUnsafePath, "entry %q: \"..\" is not allowed in names", raw)
		case len(p) > maxComponentLen:
			return "", false, apierr.New(apierr.CodeBundleBadName, "entry %q: a name component is %d bytes long, over the limit of %d", raw, len(p), maxComponentLen)
		}
		parts = append(parts, p)
	}
	if len(parts) == 0 && !dir {
		return "", false, apierr.New(apierr.CodeBundleBadName, "entry %q: the name does not name a file", raw)
	}
	return strings.Join(parts, "/"), dir, nil
}

func isASCIILetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }

// PlatformDir holds what the platform itself writes into exports (the
// export's description, data dumps); an upload of an export drops it.
const PlatformDir = ".gnome"

// isPlatformFile reports files that operating systems, the Python platform
// and this platform leave in archives and that are never part of an
// experiment: macOS resource forks and Finder data, Python bytecode caches,
// and the platform's own PlatformDir. They are dropped without an error.
func isPlatformFile(path string) bool {
	base := path
	if i := strings.LastIndexByte(path, '/'); i >= 0 {
		base = path[i+1:]
	}
	if base == ".DS_Store" || strings.HasSuffix(base, ".pyc") {
		return true
	}
	for _, c := range strings.Split(path, "/") {
		if c == "__MACOSX" || c == "__pycache__" || c == PlatformDir {
			return true
		}
	}
	return false
}
