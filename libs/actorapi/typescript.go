package actorapi

import _ "embed"

// TypeScript is gnome.d.ts, the declarations of a JavaScript actor's API
// (docs/actors.md, section 9), which the edge serves at
// /_gnome/gnome.d.ts for editors.
//
//go:embed gnome.d.ts
var TypeScript []byte
