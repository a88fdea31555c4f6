//go:build !wasip1

package actorsdk

import (
	"fmt"
	"os"
)

// Outside WebAssembly there is no host: operations fail and log lines go to
// standard error, so that an actor's own code can be vetted and tested.

func hostTransport(op string, req []byte) ([]byte, error) {
	return nil, fmt.Errorf("%s: %w", op, ErrNotWasm)
}

var levelNames = [...]string{"DEBUG", "INFO", "WARN", "ERROR"}

func logSink(level int32, msg string) {
	name := "ERROR"
	if level >= 0 && int(level) < len(levelNames) {
		name = levelNames[level]
	}
	fmt.Fprintf(os.Stderr, "actor %s %s\n", name, msg)
}
