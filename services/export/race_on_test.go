//go:build race

package export

// raceOn: the race detector slows the embedded store down about tenfold,
// so the largest test exports less.
const raceOn = true
