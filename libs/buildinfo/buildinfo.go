// Package buildinfo holds what is known of the build: the platform version,
// set at build time with
// -ldflags "-X github.com/gnome-platform/gnome/libs/buildinfo.Version=…".
package buildinfo

// Version is the platform version.
var Version = "0.1.0-dev"
