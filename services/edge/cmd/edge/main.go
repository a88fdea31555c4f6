// Command edge runs the HTTP edge alone, joining an existing NATS cluster and
// database (NATS_URL, MONGO_URI). Run as many as the load needs.
package main

import (
	"github.com/gnome-platform/gnome/libs/svc"
	"github.com/gnome-platform/gnome/services/edge"
)

func main() {
	svc.Main(edge.Name, func(d *svc.Deps) []svc.Service { return []svc.Service{edge.New(d)} })
}
