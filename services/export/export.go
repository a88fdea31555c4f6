// Package export is the export service: it builds experiment packages as
// background jobs and keeps their logs.
package export

import (
	"context"

	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/jobs"
	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/svc"
)

// Name is the service's name on the bus.
const Name = "export"

// Durable is the consumer every export worker instance shares.
const Durable = "export-worker"

// Service is one instance of the export service.
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
		Description: "export packages built as background jobs",
		Provision: func(ctx context.Context) error {
			if err := d.Topology.EnsureStreams(ctx, bus.StreamExportJobs, bus.StreamEvents); err != nil {
				return err
			}
			if err := d.Topology.EnsureObjectStores(ctx, bus.ObjectExports); err != nil {
				return err
			}
			return d.Store.EnsureIndexes(ctx, store.ExportLogs)
		},
		Workers: func(ctx context.Context) ([]*jobs.Worker, error) {
			q := jobs.NewQueue(d.JS, bus.StreamExportJobs, "jobs.export")
			w, err := q.NewWorker(ctx, jobs.WorkerOptions{Durable: Durable, Concurrency: 2, Log: d.Log}, s.Handlers.Handle)
			if err != nil {
				return nil, err
			}
			return []*jobs.Worker{w}, nil
		},
	}
	return s
}
