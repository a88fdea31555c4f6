package svc

import (
	"context"
	"time"

	"github.com/gnome-platform/gnome/libs/bus"
)

// Status is what a service instance reports about itself on
// gnome.<service>.status.
type Status struct {
	Service   string    `json:"service"`
	Instance  string    `json:"instance"`
	ID        string    `json:"id"`
	Version   string    `json:"version"`
	StartedAt time.Time `json:"started_at"`
}

// Serve registers this process's instance of service on the bus, with the
// status endpoint every service answers. The service adds its own endpoints
// to the returned server and stops it in its Stop.
func (d *Deps) Serve(service, description string) (*bus.Server, error) {
	srv, err := bus.NewServer(d.NC, bus.ServerOptions{
		Name: service, Version: d.Version, Description: description, InstanceID: d.InstanceID, Log: d.Log,
	})
	if err != nil {
		return nil, err
	}
	started := time.Now().UTC()
	err = srv.Handle("status", bus.JSON(func(context.Context, struct{}) (Status, error) {
		return Status{Service: service, Instance: d.InstanceID, ID: srv.ID(), Version: d.Version, StartedAt: started}, nil
	}))
	if err != nil {
		_ = srv.Stop(context.Background())
		return nil, err
	}
	return srv, nil
}
