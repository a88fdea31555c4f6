module github.com/gnome-platform/gnome/libs/actorsdk

go 1.26
