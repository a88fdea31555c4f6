package main

import (
	"fmt"

	"github.com/nats-io/nats.go"

	"github.com/gnome-platform/gnome/libs/bus"
)

// adminAuth is the bus admin's credentials of the embedded NATS server that
// runs with dataDir: the server refuses connections without credentials.
func adminAuth(dataDir string) (nats.Option, error) {
	a, ok, err := bus.ReadCredentials(dataDir, bus.Admin)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("no bus credentials under %s", dataDir)
	}
	return nats.UserInfo(a.User, a.Password), nil
}
