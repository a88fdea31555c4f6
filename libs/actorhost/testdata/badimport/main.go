// Command badimport has the actor's exports but imports a host function the
// platform does not provide.
package main

//go:wasmimport gnome open_socket
func openSocket() int32

var buf = make([]byte, 1<<16)

//go:wasmexport gnome_alloc
func alloc(size uint32) uint32 { return 0 }

//go:wasmexport gnome_handle
func handle(ptr, n uint32) uint64 { return uint64(openSocket()) }

func main() {}
