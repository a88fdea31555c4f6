//go:build race

package actorhost

// raceEnabled is set under the race detector, whose shadow memory for the
// Go heap inflates what the heap's allocations cost the process.
const raceEnabled = true
