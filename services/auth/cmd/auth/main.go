// Command auth runs the auth service alone, joining an existing NATS cluster
// and database (NATS_URL, MONGO_URI).
package main

import (
	"github.com/gnome-platform/gnome/libs/svc"
	"github.com/gnome-platform/gnome/services/auth"
)

func main() {
	svc.Main(auth.Name, func(d *svc.Deps) []svc.Service { return []svc.Service{auth.New(d)} })
}
