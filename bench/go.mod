module github.com/gnome-platform/gnome/bench

go 1.26

require github.com/gnome-platform/gnome/libs v0.0.0

replace github.com/gnome-platform/gnome/libs => ../libs
