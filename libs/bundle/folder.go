package bundle

import (
	"bytes"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"

	"github.com/gnome-platform/gnome/libs/apierr"
)

// PortingGuide is where the platform explains how a Python backend becomes
// an actor; warnings about Python files name it.
const PortingGuide = "docs/porting.md"

// oneFolder reports the top-level folder that holds every file, when there
// is exactly one and it holds manifest.json directly.
func oneFolder(files map[string]*entry) (string, bool) {
	folder := ""
	for p := range files {
		top, _, nested := strings.Cut(p, "/")
		if !nested || (folder != "" && top != folder) {
			return "", false
		}
		folder = top
	}
	if _, ok := files[folder+"/manifest.json"]; !ok || folder == "" {
		return "", false
	}
	return folder, true
}

// folderSlug is what a folder's name must be to serve as the slug: the
// schema's pattern (the schema refuses the reserved names itself).
var folderSlug = regexp.MustCompile(`^[a-z0-9_-]{1,64}$`)

// slugFromFolder gives a manifest without "slug" the folder's name, as the
// Python platform did, writing it into the manifest so that the stored
// bundle and every later reading of it agree. A manifest that has a slug,
// or is no JSON object, is returned as it is (parseManifest judges it).
func slugFromFolder(raw []byte, folder string) ([]byte, error) {
	raw = bytes.TrimPrefix(raw, []byte("\xef\xbb\xbf"))
	var fields map[string]json.RawMessage
	if json.Unmarshal(raw, &fields) != nil {
		return raw, nil
	}
	if _, ok := fields["slug"]; ok {
		return raw, nil
	}
	if !folderSlug.MatchString(folder) {
		return nil, apierr.New(apierr.CodeManifestInvalid,
			"manifest.json has no slug, and the folder %q it sits in cannot be one (1 to 64 lower-case letters, digits, - and _): add \"slug\" to manifest.json or rename the folder", folder).OnField("/slug")
	}
	open := bytes.IndexByte(raw, '{')
	rest := raw[open+1:]
	sep := ","
	if t := bytes.TrimLeft(rest, " \t\r\n"); len(t) > 0 && t[0] == '}' {
		sep = ""
	}
	out := make([]byte, 0, len(raw)+len(folder)+12)
	out = append(out, raw[:open+1]...)
	out = append(out, fmt.Sprintf("%q:%q%s", "slug", folder, sep)...)
	return append(out, rest...), nil
}

// pythonWarning tells the uploader of a bundle with Python files and no
// actor that nothing runs them: the original platform's backends (FastAPI
// apps, Ray actors) must be ported. Python files are never served either
// way (the edge refuses them), so their source stays private.
func pythonWarning(files []File, hasActor bool) (Warning, bool) {
	if hasActor {
		return Warning{}, false
	}
	var py []string
	for _, f := range files {
		if strings.HasSuffix(strings.ToLower(f.Path), ".py") {
			py = append(py, f.Path)
		}
	}
	if len(py) == 0 {
		return Warning{}, false
	}
	named := strings.Join(py[:min(len(py), 3)], ", ")
	if len(py) > 3 {
		named += fmt.Sprintf(" and %d more", len(py)-3)
	}
	return Warning{Field: "/actor", Message: fmt.Sprintf(
		"the bundle has Python backend files (%s) and no actor: the platform does not run Python, and never serves .py files; "+
			"port the backend to an actor in Go or JavaScript (see %s); until then the page's calls to api/ find no actor (503)", named, PortingGuide)}, true
}

// IsServerSource reports whether path is a backend source file the edge
// never serves as a static file, whatever the bundle declares.
func IsServerSource(path string) bool {
	return strings.HasSuffix(strings.ToLower(path), ".py")
}
