// Package jsruntime holds the platform's JavaScript runtime module, the
// WebAssembly actor that runs JavaScript actors (docs/actors.md, section
// 9), embedded at build time: make build writes dist/jsruntime.wasm from
// libs/actorjs/cmd/jsruntime before it builds the binaries.
package jsruntime

import (
	"embed"
	"errors"
	"io/fs"
)

//go:embed all:dist
var dist embed.FS

// File is the module's path in the repository, for messages.
const File = "services/actorworker/jsruntime/dist/jsruntime.wasm"

// ErrNotBuilt says the binary was built without the runtime module (go
// build instead of make build).
var ErrNotBuilt = errors.New("this build of the platform has no JavaScript runtime: build it with make build (" + File + " was missing)")

// Module is the runtime module's bytes.
func Module() ([]byte, error) {
	b, err := fs.ReadFile(dist, "dist/jsruntime.wasm")
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotBuilt
	}
	return b, err
}
