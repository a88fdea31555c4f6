package store

import (
	"context"
	"hash/maphash"
	"log/slog"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
)

// FerretDB (the embedded store) applies an update by reading the document,
// changing it in memory and writing it back whole, with nothing in between
// to stop a second writer: two updates of one document at the same moment
// (an export's heartbeat and its invalidation, a sequence's
// compare-and-set) can lose one, even on different fields. Against
// FerretDB, this process therefore runs the updates of one collection one
// at a time, across every Store it opened: in the embedded mode every
// service runs in this process, each with a client of its own, so one
// lock for the process covers every writer there is. MongoDB applies
// updates atomically and is left alone.

// serialWait bounds the wait for another update of the same collection:
// past it the update runs anyway (as without serialisation) rather than
// hang on an update whose end was never reported.
const serialWait = 30 * time.Second

// serialStripes spreads collections over locks; two collections sharing
// one only wait for each other.
const serialStripes = 64

// serialWrites holds each update of FerretDB from its command's start to
// its reply, by the driver's command monitor: every update of every
// repository passes there, whatever package makes it.
type serialWrites struct {
	seed    maphash.Seed
	stripes [serialStripes]chan struct{}
	mu      sync.Mutex
	held    map[int64]chan struct{} // by the command's request ID, unique in the process
}

// processWrites serialises the FerretDB updates of every Store of the
// process.
var processWrites = newSerialWrites()

func newSerialWrites() *serialWrites {
	s := &serialWrites{seed: maphash.MakeSeed(), held: map[int64]chan struct{}{}}
	for i := range s.stripes {
		s.stripes[i] = make(chan struct{}, 1)
	}
	return s
}

// readModifyWrite are the commands FerretDB runs as a read then a write.
var readModifyWrite = map[string]bool{"update": true, "findAndModify": true}

func (s *serialWrites) started(ctx context.Context, e *event.CommandStartedEvent, log *slog.Logger) {
	if !readModifyWrite[e.CommandName] {
		return
	}
	coll, ok := e.Command.Lookup(e.CommandName).StringValueOK()
	if !ok {
		return
	}
	lock := s.stripes[maphash.String(s.seed, e.DatabaseName+"."+coll)%serialStripes]
	t := time.NewTimer(serialWait)
	defer t.Stop()
	select {
	case lock <- struct{}{}:
		s.mu.Lock()
		s.held[e.RequestID] = lock
		s.mu.Unlock()
	case <-ctx.Done():
	case <-t.C:
		log.WarnContext(ctx, "update ran without waiting for the one before it", "collection", coll, "waited", serialWait)
	}
}

func (s *serialWrites) finished(requestID int64) {
	s.mu.Lock()
	lock, ok := s.held[requestID]
	delete(s.held, requestID)
	s.mu.Unlock()
	if ok {
		<-lock
	}
}

// isFerretDB reports whether the server is FerretDB (its buildInfo says
// so; MongoDB's does not).
func isFerretDB(ctx context.Context, c *mongo.Client) (bool, error) {
	var info bson.M
	if err := c.Database("admin").RunCommand(ctx, bson.D{{Key: "buildInfo", Value: 1}}).Decode(&info); err != nil {
		return false, err
	}
	_, ok := info["ferretdbVersion"]
	return ok, nil
}
