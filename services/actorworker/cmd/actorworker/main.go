// Command actorworker runs the actor-worker service alone, joining an
// existing NATS cluster and database (NATS_URL, MONGO_URI).
package main

import (
	"github.com/gnome-platform/gnome/libs/svc"
	"github.com/gnome-platform/gnome/services/actorworker"
)

func main() {
	svc.Main(actorworker.Name, func(d *svc.Deps) []svc.Service { return []svc.Service{actorworker.New(d)} })
}
