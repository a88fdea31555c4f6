package exportpkg

import (
	"embed"
	"strings"
	"text/template"

	"github.com/gnome-platform/gnome/libs/exportapi"
)

// The README and the docker files are templates, so that they read as the
// files they become.
//
//go:embed templates/*.tmpl
var templateFS embed.FS

var templates = template.Must(template.New("").ParseFS(templateFS, "templates/*.tmpl"))

// docData is what the templates are given.
type docData struct {
	Meta        Meta
	Title       string
	Description string
	Created     string
	FileName    string
	Actor       string
	Docker      bool
}

func (x *writer) docData() docData {
	m := x.bundle.Manifest
	d := docData{
		Meta:        x.meta,
		Title:       oneLine(m.Name, 200),
		Description: oneLine(m.Description, 2000),
		Created:     x.meta.CreatedAt.Format("2006-01-02 15:04 UTC"),
		FileName:    FileName(x.slug, x.meta.Version, x.t),
		Docker:      x.t == exportapi.Docker,
	}
	if d.Title == "" {
		d.Title = x.slug
	}
	if m.Actor != nil {
		d.Actor = m.Actor.Module
		if m.Actor.Script != "" {
			d.Actor = m.Actor.Script // a JavaScript actor
		}
	}
	return d
}

// oneLine makes a manifest's free text fit a Markdown line: whitespace runs
// become one space, and it is cut to at most max runes.
func oneLine(s string, max int) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > max {
		s = string(r[:max-1]) + "…"
	}
	return s
}
