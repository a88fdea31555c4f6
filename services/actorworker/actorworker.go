// Package actorworker is the actor-worker service: it hosts experiments'
// backends as sandboxed WebAssembly actors, started as background jobs.
package actorworker

import (
	"time"

	"context"

	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/jobs"
	"github.com/gnome-platform/gnome/libs/svc"
)

// Name is the service's name on the bus.
const Name = "actorworker"

// Durable is the consumer every actor-worker instance shares for start jobs.
const Durable = "actor-start"

// Service is one instance of the actor-worker service.
type Service struct {
	svc.Base
	// Handlers are the job kinds this worker runs.
	Handlers jobs.Mux
}

// New builds the service on d.
func New(d *svc.Deps) *Service {
	s := &Service{Handlers: jobs.Mux{}}
	s.Base = svc.Base{
		Deps:        d,
		ServiceName: Name,
		Description: "sandboxed WebAssembly actors of experiments",
		Provision: func(ctx context.Context) error {
			if err := d.Topology.EnsureStreams(ctx, bus.StreamActorJobs, bus.StreamEvents); err != nil {
				return err
			}
			return d.Topology.EnsureBuckets(ctx, bus.BucketActorLeases, bus.BucketActorState, bus.BucketActorKV)
		},
		Workers: func(ctx context.Context) ([]*jobs.Worker, error) {
			q := jobs.NewQueue(d.JS, bus.StreamActorJobs, "jobs.actor")
			w, err := q.NewWorker(ctx, jobs.WorkerOptions{Durable: Durable, Concurrency: 4, AckWait: 15 * time.Second, Log: d.Log}, s.Handlers.Handle)
			if err != nil {
				return nil, err
			}
			return []*jobs.Worker{w}, nil
		},
	}
	return s
}
