package svc

import (
	"context"
	"errors"

	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/jobs"
)

// Base is the life cycle of a service that lives on the bus: it provisions
// what it owns, registers its instance with its endpoints, runs its job
// workers, and on Stop leaves the queue group first, then finishes or hands
// back its jobs. Services embed it and fill the hooks.
type Base struct {
	Deps        *Deps
	ServiceName string
	Description string
	// Provision creates the streams, buckets, object stores and indexes the
	// service owns or uses; it must be idempotent.
	Provision func(ctx context.Context) error
	// Endpoints adds the service's request/reply endpoints.
	Endpoints func(srv *bus.Server) error
	// Workers builds the service's job workers (their consumers exist once
	// this returns); they start after the endpoints.
	Workers func(ctx context.Context) ([]*jobs.Worker, error)

	Server  *bus.Server
	workers []*jobs.Worker
}

// Name is the service's name on the bus.
func (b *Base) Name() string { return b.ServiceName }

// Start provisions, registers and starts the workers.
func (b *Base) Start(ctx context.Context) error {
	if b.Provision != nil {
		if err := b.Provision(ctx); err != nil {
			return err
		}
	}
	srv, err := b.Deps.Serve(b.ServiceName, b.Description)
	if err != nil {
		return err
	}
	b.Server = srv
	if b.Endpoints != nil {
		if err := b.Endpoints(srv); err != nil {
			_ = srv.Stop(ctx)
			return err
		}
	}
	if b.Workers != nil {
		ws, err := b.Workers(ctx)
		if err != nil {
			_ = srv.Stop(ctx)
			return err
		}
		b.workers = ws
		for _, w := range ws {
			w.Start()
		}
	}
	return nil
}

// Stop leaves the queue group, then stops the workers within ctx.
func (b *Base) Stop(ctx context.Context) error {
	var errs []error
	if b.Server != nil {
		errs = append(errs, b.Server.Stop(ctx))
	}
	for _, w := range b.workers {
		errs = append(errs, w.Stop(ctx))
	}
	return errors.Join(errs...)
}
