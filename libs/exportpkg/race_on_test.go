//go:build race

package exportpkg_test

// raceEnabled: the race detector slows the embedded store down about
// tenfold, so the longest tests export less.
const raceEnabled = true
