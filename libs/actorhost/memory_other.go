//go:build !linux

package actorhost

import "context"

// withLinearMemory keeps wazero's default linear memory where no
// reservation is made (see memory_linux.go).
func withLinearMemory(ctx context.Context) context.Context { return ctx }
