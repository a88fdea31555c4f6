package actorworker

import (
	"context"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gnome-platform/gnome/libs/actorapi"
	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/authapi"
)

// Study-link runs (docs/experiments.md, "Study links"): a participant's
// first call to the actor marks their run started, and the host operation
// run.finish marks it finished and answers the completion URL.

// maxSeenRuns bounds the runs a worker remembers as marked started; past
// it the memory starts again, and a run seen again is marked again (which
// changes nothing: marking is idempotent).
const maxSeenRuns = 100_000

// startedRuns remembers the runs this worker marked started, so that a
// participant's later calls cost no write, and the marks still being
// written, so that run.finish waits for its run's: two writes of one
// document at once can lose one on a store without document-level
// atomicity (FerretDB on SQLite rewrites the whole document), which left
// a run that a call started and finished at once unfinished.
type startedRuns struct {
	mu       sync.Mutex
	seen     map[string]bool
	inflight map[string]chan struct{}
}

// first reports whether key was not seen before, and remembers it; when
// it was not, the caller marks the run and calls done after.
func (r *startedRuns) first(key string) (bool, func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen[key] {
		return false, nil
	}
	if r.seen == nil || len(r.seen) >= maxSeenRuns {
		r.seen = map[string]bool{}
	}
	r.seen[key] = true
	if r.inflight == nil {
		r.inflight = map[string]chan struct{}{}
	}
	ch := make(chan struct{})
	r.inflight[key] = ch
	return true, func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		delete(r.inflight, key)
		close(ch)
	}
}

// wait returns once the mark of key being written, if any, is done, or
// when ctx ends.
func (r *startedRuns) wait(ctx context.Context, key string) {
	r.mu.Lock()
	ch := r.inflight[key]
	r.mu.Unlock()
	if ch == nil {
		return
	}
	select {
	case <-ch:
	case <-ctx.Done():
	}
}

func (r *startedRuns) forget(key string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.seen, key)
}

// runCalled marks the run a call names (actorapi.HeaderRun) started, once
// per worker, without holding up the call.
func (a *actor) runCalled(m *nats.Msg) {
	run := m.Header.Get(actorapi.HeaderRun)
	if run == "" || len(run) > 64 {
		return
	}
	bg := a.s.bg.Load()
	if bg == nil {
		return
	}
	key := a.slug + "/" + run
	first, done := a.s.runs.first(key)
	if !first {
		return
	}
	bg.Go(func(ctx context.Context) {
		defer done()
		ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if _, err := a.s.d.Store.StudyLinks().MarkStarted(ctx, a.slug, run); err != nil {
			a.s.runs.forget(key) // the next call tries again
			a.log.WarnContext(ctx, "marking a study run started failed", "run", run, "err", err)
		}
	})
}

type runFinishReq struct {
	Run string `json:"run"`
}

type runFinished struct {
	CompletionURL string    `json:"completion_url"`
	FinishedAt    time.Time `json:"finished_at"`
	Already       bool      `json:"already"`
}

// runFinish is the host operation run.finish: it marks a run of this
// experiment finished and answers the completion URL of its link. A run
// of another experiment is not found, as one that does not exist.
func (h *host) runFinish(ctx context.Context, req []byte) (any, error) {
	var r runFinishReq
	if err := decode(req, &r); err != nil {
		return nil, err
	}
	if r.Run == "" || len(r.Run) > 64 {
		return nil, apierr.New(apierr.CodeBadRequest, "run is required: the caller's link.run").OnField("/run")
	}
	h.s.runs.wait(ctx, h.slug+"/"+r.Run) // the call's own mark, if still being written
	run, link, done, err := h.s.d.Store.StudyLinks().Finish(ctx, h.slug, r.Run)
	if err != nil {
		return nil, err
	}
	if run == nil {
		return nil, apierr.New(apierr.CodeNotFound, "experiment %q has no study run %q", h.slug, r.Run).OnField("/run")
	}
	out := runFinished{FinishedAt: *run.FinishedAt, Already: !done}
	if link != nil {
		out.CompletionURL = authapi.CompletionURL(link.CompletionURL, link.CompletionCode, run.Participant, run.ID, run.Params)
	}
	return out, nil
}
