// Command export runs the export service alone, joining an existing NATS
// cluster and database (NATS_URL, MONGO_URI).
package main

import (
	"github.com/gnome-platform/gnome/libs/svc"
	"github.com/gnome-platform/gnome/services/export"
)

func main() {
	svc.Main(export.Name, func(d *svc.Deps) []svc.Service { return []svc.Service{export.New(d)} })
}
