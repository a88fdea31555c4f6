// Command noexports is a WASI reactor without the actor's exports.
package main

func main() {}
