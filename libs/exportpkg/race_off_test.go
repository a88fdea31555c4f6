//go:build !race

package exportpkg_test

const raceEnabled = false
