package svc

import (
	"context"
	"time"

	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/contract"
)

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
	err = srv.Register(bus.Endpoint(contract.StatusEndpoint(service), func(context.Context, contract.Empty) (contract.Status, error) {
		return contract.Status{Service: service, Instance: d.InstanceID, ID: srv.ID(), Version: d.Version, StartedAt: started}, nil
	}))
	if err != nil {
		_ = srv.Stop(context.Background())
		return nil, err
	}
	return srv, nil
}
