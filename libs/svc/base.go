package svc

import (
	"context"
	"errors"
	"fmt"
	"sync"

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
	// Background starts the service's followers of streams and its loops
	// through bg, after the workers; Stop ends them.
	Background func(ctx context.Context, bg *Background) error

	Server  *bus.Server
	workers []*jobs.Worker
	bg      *Background
}

// Background holds what a service runs besides its endpoints and workers:
// loops and stream followers, all ended by Stop.
type Background struct {
	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	followers []*bus.Follower
}

func newBackground() *Background {
	ctx, cancel := context.WithCancel(context.Background())
	return &Background{ctx: ctx, cancel: cancel}
}

// Context is cancelled when the service stops: the base of whatever the
// background work starts.
func (b *Background) Context() context.Context { return b.ctx }

// Go runs fn until its context is cancelled; Stop waits for it to return.
func (b *Background) Go(fn func(ctx context.Context)) {
	b.wg.Add(1)
	go func() { defer b.wg.Done(); fn(b.ctx) }()
}

// Follow keeps f, a follower made on Context, until Stop.
func (b *Background) Follow(f *bus.Follower) { b.followers = append(b.followers, f) }

// stop ends the followers (a message being handled finishes), then the
// loops, within ctx.
func (b *Background) stop(ctx context.Context) error {
	for _, f := range b.followers {
		f.Stop(ctx)
	}
	b.cancel()
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("background work still running: %w", ctx.Err())
	}
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
	if b.Background != nil {
		b.bg = newBackground()
		if err := b.Background(ctx, b.bg); err != nil {
			_ = b.Stop(ctx)
			return err
		}
	}
	return nil
}

// Stop leaves the queue group, ends the background work, then stops the
// workers within ctx. It may be called more than once.
func (b *Base) Stop(ctx context.Context) error {
	var errs []error
	if b.Server != nil {
		errs = append(errs, b.Server.Stop(ctx))
		b.Server = nil
	}
	if b.bg != nil {
		errs = append(errs, b.bg.stop(ctx))
		b.bg = nil
	}
	for _, w := range b.workers {
		errs = append(errs, w.Stop(ctx))
	}
	b.workers = nil
	return errors.Join(errs...)
}
