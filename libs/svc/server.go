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
		Identify: d.identifyCaller,
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

// identifyCaller replaces a request's caller by the identity its token
// proves (bus.ServerOptions.Identify): handlers of every service see only
// verified callers, whatever the message said.
func (d *Deps) identifyCaller(ctx context.Context, c *contract.Caller) error {
	id, err := d.Identity(ctx)
	if err != nil {
		return err
	}
	v, err := id.Caller(*c, HasAdminRole)
	if err != nil {
		return err
	}
	*c = v
	return nil
}
