package actorworker

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/gnome-platform/gnome/libs/telemetry"
)

type metrics struct {
	actors      *prometheus.GaugeVec
	calls       *prometheus.HistogramVec
	rejected    *prometheus.CounterVec
	restarts    *prometheus.CounterVec
	compile     prometheus.Histogram
	instantiate prometheus.Histogram
	hostCalls   *prometheus.CounterVec
}

// newMetrics registers the worker's metrics (shared by every instance in a
// process, as in tests).
func newMetrics(reg prometheus.Registerer) *metrics {
	return &metrics{
		actors: telemetry.Register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "gnome_actors", Help: "Actors run by this process, by state (starting, running, restarting, failed, idle).",
		}, []string{"state"})),
		calls: telemetry.Register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "gnome_actor_call_seconds", Help: "Time an actor took to serve one call, by experiment.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60},
		}, []string{"slug"})),
		rejected: telemetry.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gnome_actor_calls_rejected_total", Help: "Calls refused because the actor's mailbox was full, by experiment.",
		}, []string{"slug"})),
		restarts: telemetry.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gnome_actor_restarts_total", Help: "Actor instances discarded after a trap, a timeout, running out of memory or a failed start, by experiment.",
		}, []string{"slug"})),
		compile: telemetry.Register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "gnome_actor_compile_seconds", Help: "Time to compile an actor module (through the compilation cache).",
			Buckets: []float64{.001, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30},
		})),
		instantiate: telemetry.Register(reg, prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "gnome_actor_instantiate_seconds", Help: "Time to instantiate an actor and run its init.",
			Buckets: []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		})),
		hostCalls: telemetry.Register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "gnome_actor_host_calls_total", Help: "Host operations called by actors, by operation and outcome (ok or an error code).",
		}, []string{"op", "outcome"})),
	}
}
