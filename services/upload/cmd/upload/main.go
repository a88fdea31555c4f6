// Command upload runs the upload service alone, joining an existing NATS
// cluster and database (NATS_URL, MONGO_URI).
package main

import (
	"github.com/gnome-platform/gnome/libs/svc"
	"github.com/gnome-platform/gnome/services/upload"
)

func main() {
	svc.Main(upload.Name, func(d *svc.Deps) []svc.Service { return []svc.Service{upload.New(d)} })
}
