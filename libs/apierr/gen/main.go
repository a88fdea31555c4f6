// Command gen writes catalogue_gen.go from schemas/errors.json, so the error
// codes in Go can never drift from the published catalogue.
package main

import (
	"fmt"
	"os"

	"github.com/gnome-platform/gnome/libs/apierr/internal/catgen"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: gen <errors.json> <out.go>")
		os.Exit(2)
	}
	raw, err := os.ReadFile(os.Args[1])
	if err != nil {
		fail(err)
	}
	out, err := catgen.Generate(raw)
	if err != nil {
		fail(err)
	}
	if err := os.WriteFile(os.Args[2], out, 0o644); err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "gen:", err)
	os.Exit(1)
}
