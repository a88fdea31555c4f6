module github.com/gnome-platform/gnome/examples

go 1.26

require github.com/gnome-platform/gnome/libs/actorsdk v0.0.0

// The SDK is used from this repository; outside the workspace (GOWORK=off)
// this replacement finds it.
replace github.com/gnome-platform/gnome/libs/actorsdk => ../libs/actorsdk
