package export

import (
	"archive/zip"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/experiments"
	"github.com/gnome-platform/gnome/libs/exportapi"
	"github.com/gnome-platform/gnome/libs/exportpkg"
	"github.com/gnome-platform/gnome/libs/exportstore"
	"github.com/gnome-platform/gnome/libs/exportstore/s3test"
	"github.com/gnome-platform/gnome/libs/jobs"
	"github.com/gnome-platform/gnome/libs/store"
	"github.com/gnome-platform/gnome/libs/testenv"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

// Each type of package is built as a job and stored whole: the stored
// bytes are the recorded size and checksum, and read back as a package of
// the experiment's current version with its files and, where the type
// carries them, every document of its collections. Progress is published
// as it goes.
func TestBuildsEachTypeEndToEnd(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	s := w.service(fast())
	cfg := w.deploy("shop", "first")
	w.write("shop", "orders", bson.M{"_id": "o1", "n": 1}, bson.M{"_id": "o2", "n": 2})
	w.write("shop", "notes", bson.M{"_id": "n1", "text": "hello"})
	rec := w.recordProgress()
	for _, typ := range exportapi.Types {
		t.Run(string(typ), func(t *testing.T) {
			r := w.request("shop", typ, reader)
			if r.Reused || r.Export.Status != exportapi.StatusQueued || !exportapi.ValidID(r.Export.ID) || r.Export.UserEmail != reader.Email {
				t.Fatalf("request: %+v", r)
			}
			before := time.Now()
			l := w.waitStatus(r.Export.ID, exportapi.StatusReady)
			if l.Progress != 1 || l.Step != exportpkg.StepDone || l.Attempts != 1 || l.Worker != s.d.InstanceID || l.Error != "" ||
				l.Version != cfg.Version || l.VersionChecksum != cfg.Checksum || l.FileName != exportpkg.FileName("shop", cfg.Version, typ) ||
				l.StorageKey != exportapi.StorageKey(l.ID) || l.Invalidated || l.Expired || l.FinishedAt == nil {
				t.Errorf("ready log: %+v", l)
			}
			if l.ExpiresAt == nil || l.ExpiresAt.Sub(before) < w.cfg.ExportRetention-time.Minute || l.ExpiresAt.Sub(before) > w.cfg.ExportRetention+time.Minute {
				t.Errorf("expires at %v, want about %v from now", l.ExpiresAt, w.cfg.ExportRetention)
			}
			b := stored(t, s.files, l.StorageKey)
			if int64(len(b)) != l.FileSize || sha(b) != l.Checksum {
				t.Fatalf("stored %d bytes with sha256 %s; the log says %d bytes, %s", len(b), sha(b), l.FileSize, l.Checksum)
			}
			p, err := exportpkg.Open(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				t.Fatalf("open the stored package: %v", err)
			}
			defer p.Close()
			if p.Meta.Type != typ || p.Meta.Slug != "shop" || p.Meta.Version != cfg.Version || p.Meta.Checksum != cfg.Checksum {
				t.Errorf("package meta %+v", p.Meta)
			}
			var files []string
			for _, f := range p.Bundle.Files {
				files = append(files, f.Path)
			}
			if !slices.Equal(files, []string{"index.html", "manifest.json", "static/app.js"}) {
				t.Errorf("package files %v", files)
			}
			var colls []string
			for _, c := range p.Collections() {
				colls = append(colls, c.Name)
			}
			if typ.HasData() {
				if !slices.Equal(colls, []string{"notes", "orders"}) || p.Meta.Documents != 3 || l.Documents != 3 || p.Config == nil || p.Config.Checksum != cfg.Checksum {
					t.Errorf("data of the package: collections %v, %d documents (log %d)", colls, p.Meta.Documents, l.Documents)
				}
				var ids []string
				if err := p.ReadCollection("orders", func(doc bson.D) error {
					for _, e := range doc {
						if e.Key == "_id" {
							ids = append(ids, e.Value.(string))
						}
					}
					return nil
				}); err != nil || !slices.Equal(ids, []string{"o1", "o2"}) {
					t.Errorf("orders in the package: %v, %v", ids, err)
				}
			} else if len(colls) != 0 || l.Documents != 0 {
				t.Errorf("an %s package with data: %v", typ, colls)
			}
			zr, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
			if err != nil {
				t.Fatal(err)
			}
			hasDockerfile := slices.ContainsFunc(zr.File, func(f *zip.File) bool { return f.Name == exportpkg.Dockerfile })
			if hasDockerfile != (typ == exportapi.Docker) {
				t.Errorf("%s package: Dockerfile present %v", typ, hasDockerfile)
			}

			// Every change was published, in order, ending ready.
			var pub []exportapi.Log
			eventually(t, 5*time.Second, "the ready state to be published", func() bool {
				pub = rec.of(l.ID)
				return len(pub) > 0 && pub[len(pub)-1].Status == exportapi.StatusReady
			})
			last, running := -1.0, 0
			for _, pl := range pub {
				if pl.Status == exportapi.StatusRunning {
					running++
					if pl.Progress < last {
						t.Errorf("progress went back from %v to %v", last, pl.Progress)
					}
					last = pl.Progress
				}
			}
			if pub[0].Status != exportapi.StatusQueued || running < 2 || pub[len(pub)-1].Checksum != l.Checksum {
				t.Errorf("published %d states (first %s, %d running)", len(pub), pub[0].Status, running)
			}
		})
	}
}

// A build job that comes again (redelivered after a crash between the
// work and the ack, or enqueued again) finds its export final and does
// nothing: one export, one file.
func TestRedeliveredJobMakesNoSecondExport(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	s := w.service(fast())
	w.deploy("shop", "first")
	r := w.request("shop", exportapi.Standalone, reader)
	first := w.waitStatus(r.Export.ID, exportapi.StatusReady)

	// The same job once more, as a redelivery hands it to a handler.
	payload, _ := json.Marshal(exportapi.BuildJob{ID: first.ID})
	if err := s.Handlers.Handle(ctxT(t), &jobs.Job{ID: first.ID, Kind: exportapi.JobBuild, Data: payload, Attempt: 2, MaxAttempts: 3}); err != nil {
		t.Fatalf("the job run again: %v", err)
	}
	// And enqueued again: the queue drops it as a duplicate.
	q := jobs.NewQueue(w.d.JS, bus.StreamExportJobs, exportapi.JobPrefix)
	if dup, err := q.Enqueue(ctxT(t), exportapi.JobBuild, first.ID, exportapi.BuildJob{ID: first.ID}); err != nil || !dup {
		t.Fatalf("enqueue again: duplicate=%v err=%v", dup, err)
	}
	// Under another job ID (past the duplicate window), the worker runs
	// it and leaves the export as it is.
	if _, err := q.Enqueue(ctxT(t), exportapi.JobBuild, first.ID+"-again", exportapi.BuildJob{ID: first.ID}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the queue to be empty", func() bool {
		st, err := w.d.JS.Stream(ctxT(t), bus.StreamExportJobs)
		if err != nil {
			return false
		}
		info, err := st.Info(ctxT(t))
		return err == nil && info.State.Msgs == 0
	})
	after := w.log(first.ID)
	if after.Attempts != first.Attempts || after.Checksum != first.Checksum || !after.UpdatedAt.Equal(first.UpdatedAt) || after.Status != exportapi.StatusReady {
		t.Errorf("the export changed: before %+v, after %+v", first, after)
	}
	n, err := w.d.Store.Collection(store.ExportLogs).CountDocuments(ctxT(t), bson.D{})
	if err != nil || n != 1 {
		t.Errorf("%d export logs, %v; want 1", n, err)
	}
	if objs := w.objects(); !slices.Equal(objs, []string{first.StorageKey}) {
		t.Errorf("stored objects %v, want only %s", objs, first.StorageKey)
	}
	// The export ID is unique in the store, whatever writes it.
	dupLog := first
	dupLog.ID = exportapi.NewID()
	if err := s.logs.Insert(ctxT(t), &dupLog); err != nil {
		t.Fatal(err)
	}
	dupLog.ID, dupLog.ExportID = exportapi.NewID(), first.ID
	if _, err := w.d.Store.Collection(store.ExportLogs).InsertOne(ctxT(t), dupLog); err == nil {
		t.Error("a second log with the same export_id was stored")
	}
}

// A ready export of the same source (type, version, configuration and
// data) is handed out again: to its requester as is, to another requester
// as a log of their own sharing the file. A data write through the scoped
// library or a new version makes a new build; a package without data does
// not depend on the data.
func TestReuseRule(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.service(fast())
	w.deploy("shop", "first")
	w.write("shop", "orders", bson.M{"_id": "o1"})

	first := w.waitStatus(w.request("shop", exportapi.Standalone, reader).Export.ID, exportapi.StatusReady)
	ur := w.waitStatus(w.request("shop", exportapi.UploadReady, reader).Export.ID, exportapi.StatusReady)

	again := w.request("shop", exportapi.Standalone, reader)
	if !again.Reused || again.Export.ID != first.ID {
		t.Errorf("the requester's second request: %+v, want %s reused", again, first.ID)
	}
	shared := w.request("shop", exportapi.Standalone, testenv.Caller("Other@Example.com", "admin"))
	s := shared.Export
	if !shared.Reused || s.ID == first.ID || s.ReusedFrom != first.ID || s.Status != exportapi.StatusReady || s.UserEmail != "other@example.com" ||
		w.log(s.ID).StorageKey != first.StorageKey || s.Checksum != first.Checksum || s.FileSize != first.FileSize || !s.ExpiresAt.Equal(*first.ExpiresAt) {
		t.Errorf("another requester's request: %+v", shared)
	}
	if got, err := w.get(s.ID, other); err != nil || got.ID != s.ID {
		t.Errorf("the other requester reads their export: %v", err)
	}
	if _, err := w.get(s.ID, reader); err == nil {
		t.Error("the first requester reads the other's export")
	}
	if n, _ := w.d.Store.Collection(store.ExportLogs).CountDocuments(ctxT(t), bson.D{}); n != 3 {
		t.Errorf("%d logs, want 3", n)
	}

	// Another type is another source.
	docker := w.request("shop", exportapi.Docker, reader)
	if docker.Reused {
		t.Error("a docker request reused a standalone export")
	}
	w.waitStatus(docker.Export.ID, exportapi.StatusReady)

	// A data write: the packages with data are stale, the upload-ready one is not.
	w.write("shop", "orders", bson.M{"_id": "o2"})
	fresh := w.request("shop", exportapi.Standalone, reader)
	if fresh.Reused || fresh.Export.ID == first.ID {
		t.Errorf("after a data write: %+v, want a new build", fresh)
	}
	if l := w.waitStatus(fresh.Export.ID, exportapi.StatusReady); l.Documents != 2 {
		t.Errorf("the new build has %d documents, want 2", l.Documents)
	}
	if r := w.request("shop", exportapi.UploadReady, reader); !r.Reused || r.Export.ID != ur.ID {
		t.Errorf("upload-ready after a data write: %+v, want %s reused", r, ur.ID)
	}

	// A change of status only is a change of the configuration the
	// standalone package carries.
	w.setStatus("shop", experiments.StatusDraft)
	if r := w.request("shop", exportapi.Standalone, reader); r.Reused {
		t.Error("a standalone export was reused across a configuration change")
	}

	// A new version: nothing is reused.
	w.deploy("shop", "second")
	r := w.request("shop", exportapi.UploadReady, reader)
	if r.Reused || r.Export.Version != 2 {
		t.Errorf("after a new version: %+v", r)
	}
}

// A requester asking again while their export is queued or being built
// joins it instead of queueing another.
func TestRequestJoinsTheBuildUnderWay(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	s := NewWith(w.env.Deps(t, w.cfg), fast())
	hold := make(chan struct{})
	build := s.Handlers[exportapi.JobBuild]
	s.Handlers[exportapi.JobBuild] = func(ctx context.Context, j *jobs.Job) error {
		<-hold
		return build(ctx, j)
	}
	w.run(s)
	// A failing test lets the held builds go, so that the service stops.
	var holdOnce sync.Once
	letGo := func() { holdOnce.Do(func() { close(hold) }) }
	t.Cleanup(letGo)
	w.deploy("shop", "first")
	first := w.request("shop", exportapi.Standalone, reader)
	second := w.request("shop", exportapi.Standalone, testenv.Caller(" READER@example.com "))
	if second.Reused || second.Export.ID != first.Export.ID {
		t.Errorf("second request: %+v, want to join %s", second, first.Export.ID)
	}
	otherOne := w.request("shop", exportapi.Standalone, otherAdmin)
	if otherOne.Export.ID == first.Export.ID {
		t.Error("another requester joined someone else's build")
	}
	letGo()
	w.waitStatus(first.Export.ID, exportapi.StatusReady)
	w.waitStatus(otherOne.Export.ID, exportapi.StatusReady)
}

// Requests of one requester for one source made at the same moment (a
// double click, a client's retry) end in one export and one build, and so
// do simultaneous reuses of another requester's ready export.
func TestSimultaneousRequestsMakeOneExport(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	s := NewWith(w.env.Deps(t, w.cfg), fast())
	var builds atomic.Int32
	build := s.Handlers[exportapi.JobBuild]
	s.Handlers[exportapi.JobBuild] = func(ctx context.Context, j *jobs.Job) error {
		builds.Add(1)
		return build(ctx, j)
	}
	w.run(s)
	w.deploy("shop", "first")
	same := func(c uploadapi.Caller) map[string]bool {
		const n = 8
		ids := make(chan string, n)
		var wg sync.WaitGroup
		for range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := call(t, w.d.NC, exportapi.EndpointRequest, exportapi.Request{Slug: "shop", Type: exportapi.Standalone, Caller: c})
				if err != nil {
					t.Errorf("request: %v", err)
					return
				}
				ids <- r.Export.ID
			}()
		}
		wg.Wait()
		close(ids)
		got := map[string]bool{}
		for id := range ids {
			got[id] = true
		}
		return got
	}
	first := same(reader)
	if len(first) != 1 {
		t.Fatalf("8 simultaneous requests made exports %v, want one", first)
	}
	var id string
	for k := range first {
		id = k
	}
	w.waitStatus(id, exportapi.StatusReady)
	if n := builds.Load(); n != 1 {
		t.Errorf("%d builds ran, want 1", n)
	}
	// Another requester, all at once: one new record sharing the file.
	second := same(otherAdmin)
	if len(second) != 1 || second[id] {
		t.Fatalf("another requester's simultaneous requests gave %v, want one export of their own", second)
	}
	for k := range second {
		if l := w.log(k); l.Status != exportapi.StatusReady || l.ReusedFrom != id {
			t.Errorf("the other requester's export: %s reused from %q, want ready and reused from %s", l.Status, l.ReusedFrom, id)
		}
	}
	n, err := w.d.Store.Collection(store.ExportLogs).CountDocuments(ctxT(t), bson.D{{Key: "slug_id", Value: "shop"}})
	if err != nil || n != 2 {
		t.Errorf("%d export records (%v), want 2", n, err)
	}
	if n := builds.Load(); n != 1 {
		t.Errorf("%d builds ran, want 1", n)
	}
}

// A new version of the experiment invalidates its exports of older
// versions and deletes their files; a change of status alone does not; its
// deletion invalidates the rest.
func TestEventsInvalidateExports(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	s := w.service(fast())
	w.deploy("shop", "first")
	v1 := w.waitStatus(w.request("shop", exportapi.Standalone, reader).Export.ID, exportapi.StatusReady)
	shared := w.request("shop", exportapi.Standalone, otherAdmin).Export

	w.setStatus("shop", experiments.StatusArchived)
	w.deploy("shop", "second")
	eventually(t, 10*time.Second, "the v1 exports to be invalidated", func() bool {
		return w.log(v1.ID).Invalidated && w.log(shared.ID).Invalidated
	})
	for _, id := range []string{v1.ID, shared.ID} {
		l := w.log(id)
		if l.Status != exportapi.StatusInvalidated || l.InvalidatedBy != "new version 2" || l.InvalidatedAt == nil {
			t.Errorf("invalidated export %+v", l)
		}
	}
	// The file goes just after the log is marked.
	eventually(t, 10*time.Second, "the invalidated export's file to be deleted", func() bool {
		_, err := s.files.Stat(ctxT(t), v1.StorageKey)
		return err != nil && apierr.From(err).Code == apierr.CodeNotFound
	})
	_, err := call(t, w.d.NC, exportapi.EndpointDownload, exportapi.Get{ID: v1.ID, Caller: reader})
	wantCode(t, "download of an invalidated export", err, apierr.CodeGone)

	v2 := w.waitStatus(w.request("shop", exportapi.Standalone, reader).Export.ID, exportapi.StatusReady)
	w.setStatus("shop", experiments.StatusActive)
	time.Sleep(300 * time.Millisecond) // the event is consumed
	if l := w.log(v2.ID); l.Invalidated {
		t.Errorf("a change of status invalidated %+v", l)
	}

	// Every event once more, as a consumer made anew reads the whole
	// stream: the old ones leave the newer export alone.
	if err := w.d.JS.DeleteConsumer(ctxT(t), bus.StreamEvents, InvalidatorDurable); err != nil {
		t.Fatal(err)
	}
	w.service(fast())
	eventually(t, 10*time.Second, "the new consumer to read every event", func() bool {
		c, err := w.d.JS.Consumer(ctxT(t), bus.StreamEvents, InvalidatorDurable)
		if err != nil {
			return false
		}
		info, err := c.Info(ctxT(t))
		return err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.Delivered.Stream > 0
	})
	if l := w.log(v2.ID); l.Invalidated || stored(t, s.files, v2.StorageKey) == nil {
		t.Errorf("old events read again invalidated %+v", l)
	}
	if l := w.log(v1.ID); l.InvalidatedBy != "new version 2" {
		t.Errorf("an event handled again changed %+v", l)
	}

	w.remove("shop")
	eventually(t, 10*time.Second, "the v2 export to be invalidated", func() bool { return w.log(v2.ID).Invalidated })
	if l := w.log(v2.ID); l.InvalidatedBy != "experiment deleted" || l.Status != exportapi.StatusInvalidated {
		t.Errorf("after the deletion: %+v", l)
	}
	eventually(t, 10*time.Second, "no file to be left after the deletion", func() bool { return len(w.objects()) == 0 })
}

// An admin invalidates one export, keeping its file for those who share
// it, or with delete_files removes the file and invalidates every export
// sharing it.
func TestAdminInvalidates(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	s := w.service(fast())
	w.deploy("shop", "first")
	a := w.waitStatus(w.request("shop", exportapi.Standalone, reader).Export.ID, exportapi.StatusReady)
	b := w.request("shop", exportapi.Standalone, otherAdmin).Export
	c := w.request("shop", exportapi.Standalone, testenv.Caller("third@example.com", "admin")).Export

	_, err := call(t, w.d.NC, exportapi.EndpointInvalidate, exportapi.Invalidate{ID: a.ID, Caller: reader})
	wantCode(t, "invalidate by a non-admin", err, apierr.CodeForbidden)
	_, err = call(t, w.d.NC, exportapi.EndpointInvalidate, exportapi.Invalidate{ID: exportapi.NewID(), Caller: admin})
	wantCode(t, "invalidate an unknown export", err, apierr.CodeNotFound)

	l, err := call(t, w.d.NC, exportapi.EndpointInvalidate, exportapi.Invalidate{ID: a.ID, Caller: admin})
	if err != nil || !l.Invalidated || l.Status != exportapi.StatusInvalidated || l.InvalidatedBy != admin.Email {
		t.Fatalf("invalidate: %+v %v", l, err)
	}
	if stored(t, s.files, a.StorageKey) == nil {
		t.Error("invalidating without delete_files deleted the file")
	}
	if d, err := call(t, w.d.NC, exportapi.EndpointDownload, exportapi.Get{ID: b.ID, Caller: other}); err != nil || d.StorageKey != a.StorageKey {
		t.Errorf("the sharing export's download: %+v %v", d, err)
	}

	l, err = call(t, w.d.NC, exportapi.EndpointInvalidate, exportapi.Invalidate{ID: b.ID, DeleteFiles: true, Caller: admin})
	if err != nil || !l.Invalidated {
		t.Fatalf("invalidate with delete_files: %+v %v", l, err)
	}
	if stored(t, s.files, a.StorageKey) != nil {
		t.Error("the file is still stored")
	}
	if cl := w.log(c.ID); !cl.Invalidated || cl.InvalidatedBy != admin.Email {
		t.Errorf("an export sharing the deleted file: %+v", cl)
	}
	_, err = call(t, w.d.NC, exportapi.EndpointDownload, exportapi.Get{ID: c.ID, Caller: testenv.Caller("third@example.com")})
	wantCode(t, "download of an export whose file was deleted", err, apierr.CodeGone)
	// A new request builds again.
	if r := w.request("shop", exportapi.Standalone, reader); r.Reused {
		t.Errorf("a request after the invalidation reused %+v", r.Export)
	}
}

// An experiment deleted while its export is being built: the build stops,
// the export ends invalidated and nothing stays stored.
func TestExperimentDeletedDuringTheBuild(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	s := NewWith(w.env.Deps(t, w.cfg), fast())
	reached := make(chan struct{})
	release := make(chan struct{})
	s.progressHook = func(_ string, _ float64, step string) {
		if strings.HasPrefix(step, exportpkg.StepData) {
			select {
			case <-reached:
			default:
				close(reached)
				<-release
			}
		}
	}
	w.run(s)
	// Registered after the service's own clean-up, so run before it: a
	// failing test releases the build it holds, and the service can stop.
	var releaseOnce sync.Once
	releaseBuild := func() { releaseOnce.Do(func() { close(release) }) }
	t.Cleanup(releaseBuild)
	w.deploy("shop", "first")
	w.write("shop", "orders", bson.M{"_id": "o1"})
	id := w.request("shop", exportapi.Standalone, reader).Export.ID
	select {
	case <-reached:
	case <-time.After(20 * time.Second):
		t.Fatal("the build did not reach the data")
	}
	if l := w.log(id); l.Status != exportapi.StatusRunning {
		t.Fatalf("the export is %s during its build", l.Status)
	}
	w.remove("shop")
	eventually(t, 10*time.Second, "the export to be invalidated", func() bool { return w.log(id).Invalidated })
	releaseBuild()
	eventually(t, 10*time.Second, "the job to end", func() bool {
		st, _ := w.d.JS.Stream(ctxT(t), bus.StreamExportJobs)
		info, err := st.Info(ctxT(t))
		return err == nil && info.State.Msgs == 0
	})
	l := w.log(id)
	if l.Status != exportapi.StatusInvalidated || l.InvalidatedBy != "experiment deleted" || l.Checksum != "" {
		t.Errorf("the export after its experiment's deletion: %+v", l)
	}
	if objs := w.objects(); len(objs) != 0 {
		t.Errorf("stored objects %v, want none", objs)
	}
}

// With the storage unavailable, the job is tried MaxAttempts times with
// back-off, then fails with a reason that names the storage; nothing is
// reported ready.
func TestStorageUnavailableFailsWithItsReason(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := l.Addr().String()
	l.Close() // nothing listens there now
	files, err := exportstore.NewS3(exportstore.S3Config{Endpoint: "http://" + dead, Region: "us-east-1", AccessKey: "k", SecretKey: "secret-key", Bucket: "exports"})
	if err != nil {
		t.Fatal(err)
	}
	o := fast()
	o.MaxAttempts, o.Backoff, o.Files = 2, []time.Duration{300 * time.Millisecond}, files
	w.service(o)
	w.deploy("shop", "first")
	rec := w.recordProgress()
	id := w.request("shop", exportapi.UploadReady, reader).Export.ID
	start := time.Now()
	f := w.waitStatus(id, exportapi.StatusFailed)
	t.Logf("failed after %v: %s", time.Since(start).Round(time.Millisecond), f.Error)
	if f.Attempts != 2 || !strings.Contains(f.Error, "store the package") || !strings.Contains(f.Error, dead) || f.FinishedAt == nil {
		t.Errorf("failed export: %+v", f)
	}
	for _, p := range rec.of(id) {
		if p.Status == exportapi.StatusReady {
			t.Errorf("published ready: %+v", p)
		}
	}
	_, err = call(t, w.d.NC, exportapi.EndpointDownload, exportapi.Get{ID: id, Caller: reader})
	if ae := wantCode(t, "download of a failed export", err, apierr.CodeConflict); !strings.Contains(ae.Message, "failed") {
		t.Errorf("download refusal %q does not say the export failed", ae.Message)
	}
}

// Past retention, the clean-up deletes the file and marks the export
// expired, and its download is not found; running it again, or on another
// instance, changes nothing.
func TestRetentionCleanup(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	s := w.service(fast())
	s2 := w.service(fast())
	w.deploy("shop", "first")
	a := w.waitStatus(w.request("shop", exportapi.Standalone, reader).Export.ID, exportapi.StatusReady)
	b := w.request("shop", exportapi.Standalone, otherAdmin).Export
	keep := w.waitStatus(w.request("shop", exportapi.UploadReady, reader).Export.ID, exportapi.StatusReady)
	past := now().Add(-time.Second)
	if _, err := w.d.Store.Collection(store.ExportLogs).UpdateMany(ctxT(t), bson.D{{Key: "b2_file_name", Value: a.StorageKey}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "expires_at", Value: past}}}}); err != nil {
		t.Fatal(err)
	}
	// A file left by a failed build goes too.
	failed := exportapi.Log{ID: exportapi.NewID(), Slug: "shop", Type: exportapi.Standalone, UserEmail: reader.Email, Status: exportapi.StatusFailed,
		CreatedAt: past.Add(-time.Hour), UpdatedAt: past.Add(-time.Hour)}
	failed.StorageKey = exportapi.StorageKey(failed.ID)
	if err := s.logs.Insert(ctxT(t), &failed); err != nil {
		t.Fatal(err)
	}
	if _, err := s.files.Put(ctxT(t), failed.StorageKey, strings.NewReader("left over")); err != nil {
		t.Fatal(err)
	}

	for _, inst := range []*Service{s, s2, s} {
		if err := inst.cleanup(ctxT(t)); err != nil {
			t.Fatalf("clean-up: %v", err)
		}
	}
	for _, id := range []string{a.ID, b.ID} {
		if l := w.log(id); !l.Expired || l.Status != exportapi.StatusReady {
			t.Errorf("after the clean-up: %+v", l)
		}
		_, err := call(t, w.d.NC, exportapi.EndpointDownload, exportapi.Get{ID: id, Caller: admin})
		if ae := wantCode(t, "download of an expired export", err, apierr.CodeNotFound); ae.Message != "the export has expired" {
			t.Errorf("download refusal %q", ae.Message)
		}
	}
	if objs := w.objects(); !slices.Equal(objs, []string{keep.StorageKey}) {
		t.Errorf("stored objects %v, want only %s", objs, keep.StorageKey)
	}
	if l := w.log(failed.ID); !l.Expired {
		t.Errorf("the failed export's leftover is not recorded as gone: %+v", l)
	}
	// A new request builds anew.
	if r := w.request("shop", exportapi.Standalone, reader); r.Reused {
		t.Error("an expired export was reused")
	}
}

// A running export whose job stopped showing signs of life (every worker
// that could take it over is gone) is failed by the clean-up; a live one
// is left alone.
func TestCleanupFailsStaleJobs(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	o := fast()
	o.StaleAfter = time.Minute
	s := w.service(o)
	old, fresh := now().Add(-2*time.Minute), now()
	mk := func(status string, beat time.Time, created time.Time) string {
		l := exportapi.Log{ID: exportapi.NewID(), Slug: "shop", Type: exportapi.Standalone, UserEmail: reader.Email, Status: status,
			HeartbeatAt: &beat, CreatedAt: created, UpdatedAt: created}
		l.StorageKey = exportapi.StorageKey(l.ID)
		if err := s.logs.Insert(ctxT(t), &l); err != nil {
			t.Fatal(err)
		}
		return l.ID
	}
	stale := mk(exportapi.StatusRunning, old, old)
	alive := mk(exportapi.StatusRunning, fresh, old)
	queuedLong := mk(exportapi.StatusQueued, old, now().Add(-26*time.Hour))
	queued := mk(exportapi.StatusQueued, old, old)
	if err := s.cleanup(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	if l := w.log(stale); l.Status != exportapi.StatusFailed || l.Error != reasonStale {
		t.Errorf("stale: %+v", l)
	}
	if l := w.log(queuedLong); l.Status != exportapi.StatusFailed || l.Error != reasonNeverRun {
		t.Errorf("queued past the queue's age: %+v", l)
	}
	for _, id := range []string{alive, queued} {
		if l := w.log(id); !exportapi.Live(l.Status) {
			t.Errorf("a live export was failed: %+v", l)
		}
	}
}

// Only the requester and admins see an export; only admins list and
// invalidate; the list is newest first, by slug, bounded.
func TestAccessAndListing(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.service(fast())
	w.deploy("shop", "first")
	w.deploy("cafe", "first")
	a := w.waitStatus(w.request("shop", exportapi.UploadReady, reader).Export.ID, exportapi.StatusReady)
	b := w.request("cafe", exportapi.UploadReady, other).Export
	c := w.request("shop", exportapi.Standalone, otherAdmin).Export

	if l, err := w.get(a.ID, testenv.Caller("READER@example.com")); err != nil || l.ID != a.ID {
		t.Errorf("the requester (another case) reads: %v", err)
	}
	if l, err := w.get(a.ID, admin); err != nil || l.ID != a.ID {
		t.Errorf("an admin reads: %v", err)
	}
	_, err := w.get(a.ID, other)
	wantCode(t, "get by another user", err, apierr.CodeNotFound)
	_, err = call(t, w.d.NC, exportapi.EndpointDownload, exportapi.Get{ID: a.ID, Caller: other})
	wantCode(t, "download by another user", err, apierr.CodeNotFound)
	if d, err := call(t, w.d.NC, exportapi.EndpointDownload, exportapi.Get{ID: a.ID, Caller: reader}); err != nil ||
		d.StorageKey != a.StorageKey || d.URL != "" || d.Export.ID != a.ID {
		t.Errorf("download from the object store: %+v %v", d, err)
	}

	_, err = call(t, w.d.NC, exportapi.EndpointList, exportapi.List{Caller: reader})
	wantCode(t, "list by a user", err, apierr.CodeForbidden)
	all, err := call(t, w.d.NC, exportapi.EndpointList, exportapi.List{Caller: admin})
	if err != nil || len(all.Exports) != 3 || all.Exports[0].ID != c.ID || all.Exports[2].ID != a.ID {
		t.Errorf("list: %+v %v", all, err)
	}
	shop, err := call(t, w.d.NC, exportapi.EndpointList, exportapi.List{Slug: "shop", Limit: 1, Caller: admin})
	if err != nil || len(shop.Exports) != 1 || shop.Exports[0].ID != c.ID {
		t.Errorf("list of shop, limit 1: %+v %v", shop, err)
	}
	none, err := call(t, w.d.NC, exportapi.EndpointList, exportapi.List{Slug: "nothing", Caller: admin})
	if err != nil || none.Exports == nil || len(none.Exports) != 0 {
		t.Errorf("list of an experiment without exports: %+v %v", none, err)
	}
	_ = b
}

// Malformed requests get the contract's codes.
func TestBadInput(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	w.service(fast())
	w.deploy("shop", "first")
	for _, tc := range []struct {
		name    string
		subject string
		req     any
		code    apierr.Code
		field   string
	}{
		{"unknown type", exportapi.EndpointRequest.Subject(), exportapi.Request{Slug: "shop", Type: "tarball", Caller: reader}, apierr.CodeValidationFailed, "/type"},
		{"no type", exportapi.EndpointRequest.Subject(), exportapi.Request{Slug: "shop", Caller: reader}, apierr.CodeValidationFailed, "/type"},
		{"unknown slug", exportapi.EndpointRequest.Subject(), exportapi.Request{Slug: "nowhere", Type: exportapi.Standalone, Caller: reader}, apierr.CodeNotFound, ""},
		{"anonymous", exportapi.EndpointRequest.Subject(), exportapi.Request{Slug: "shop", Type: exportapi.Standalone}, apierr.CodeUnauthenticated, ""},
		{"malformed id", exportapi.EndpointGet.Subject(), exportapi.Get{ID: "../etc/passwd", Caller: admin}, apierr.CodeNotFound, "/id"},
		{"unknown id", exportapi.EndpointGet.Subject(), exportapi.Get{ID: exportapi.NewID(), Caller: admin}, apierr.CodeNotFound, ""},
		{"malformed download id", exportapi.EndpointDownload.Subject(), exportapi.Get{ID: "ex-1", Caller: admin}, apierr.CodeNotFound, "/id"},
		{"not JSON", exportapi.EndpointRequest.Subject(), json.RawMessage(`{"slug":`), apierr.CodeInvalidJson, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if raw, ok := tc.req.(json.RawMessage); ok {
				_, err = bus.CallRaw(ctxT(t), w.d.NC, tc.subject, raw)
			} else {
				var out json.RawMessage
				err = bus.Client{NC: w.d.NC}.Request(ctxT(t), tc.subject, tc.req, &out)
			}
			if ae := wantCode(t, tc.name, err, tc.code); ae.Field != tc.field {
				t.Errorf("field %q, want %q", ae.Field, tc.field)
			}
		})
	}
	// Nothing was recorded nor queued by the refused requests.
	if n, err := w.d.Store.Collection(store.ExportLogs).CountDocuments(ctxT(t), bson.D{}); err != nil || n != 0 {
		t.Errorf("%d export records after refused requests (%v), want none", n, err)
	}
	if st, err := w.d.JS.Stream(ctxT(t), bus.StreamExportJobs); err != nil || st.CachedInfo().State.Msgs != 0 {
		t.Errorf("export jobs after refused requests: %v, want none", err)
		if err == nil {
			t.Errorf("%d jobs queued", st.CachedInfo().State.Msgs)
		}
	}
	// Not ready yet: a conflict naming the status.
	var l exportapi.Log
	l.ID, l.Slug, l.Type, l.UserEmail, l.Status = exportapi.NewID(), "shop", exportapi.Standalone, reader.Email, exportapi.StatusQueued
	if err := w.d.Store.Exports().Insert(ctxT(t), &l); err != nil {
		t.Fatal(err)
	}
	_, err := call(t, w.d.NC, exportapi.EndpointDownload, exportapi.Get{ID: l.ID, Caller: reader})
	if ae := wantCode(t, "download of a queued export", err, apierr.CodeConflict); !strings.Contains(ae.Message, "queued") {
		t.Errorf("refusal %q does not name the status", ae.Message)
	}
}

// On S3-compatible storage (a real versitygw server), the package is
// stored in the bucket and the download is a presigned link that serves
// the recorded bytes.
func TestS3StorageGivesPresignedLinks(t *testing.T) {
	t.Parallel()
	srv := s3test.Start(t)
	bucket := srv.NewBucket(t)
	w := newWorld(t)
	w.cfg.B2.KeyID, w.cfg.B2.Key, w.cfg.B2.Bucket, w.cfg.B2.Endpoint = bucket.AccessKey, bucket.SecretKey, bucket.Bucket, bucket.Endpoint
	s := w.service(fast())
	if !strings.HasPrefix(s.files.Name(), "s3:") {
		t.Fatalf("the service stores in %s", s.files.Name())
	}
	w.deploy("shop", "first")
	w.write("shop", "orders", bson.M{"_id": "o1"})
	l := w.waitStatus(w.request("shop", exportapi.Docker, reader).Export.ID, exportapi.StatusReady)
	d, err := call(t, w.d.NC, exportapi.EndpointDownload, exportapi.Get{ID: l.ID, Caller: reader})
	if err != nil {
		t.Fatal(err)
	}
	if d.URL == "" || d.URLExpires == nil || d.URLExpires.Before(time.Now()) || d.URLExpires.After(time.Now().Add(w.cfg.ExportLinkTTL+time.Second)) || d.StorageKey != l.StorageKey {
		t.Fatalf("download: %+v", d)
	}
	resp, err := http.Get(d.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 || sha(body) != l.Checksum || int64(len(body)) != l.FileSize {
		t.Errorf("presigned download: %d, %d bytes, sha256 %s, %v; want %d bytes, %s", resp.StatusCode, len(body), sha(body), err, l.FileSize, l.Checksum)
	}
	// Saved under the package's name, not the storage key.
	if cd, want := resp.Header.Get("Content-Disposition"), exportstore.Attachment(l.FileName); l.FileName == "" || cd != want {
		t.Errorf("presigned download: Content-Disposition %q, want %q", cd, want)
	}
	if objs := w.objects(); len(objs) != 0 {
		t.Errorf("the object store holds %v with S3 configured", objs)
	}
}

// A build whose worker dies on the job's last attempt (its connection
// drops as with SIGKILL) is reported by another instance once the ack
// deadline passes: the export fails with that reason instead of staying
// running.
func TestWorkerDyingOnTheLastAttempt(t *testing.T) {
	t.Parallel()
	w := newWorld(t)
	o := fast()
	o.MaxAttempts, o.AckWait = 1, time.Second
	victimDeps := w.env.Deps(t, w.cfg)
	victim := NewWith(victimDeps, o)
	reached := make(chan struct{}, 1)
	dead := make(chan struct{})
	t.Cleanup(func() { close(dead) })
	victim.progressHook = func(string, float64, string) {
		select {
		case reached <- struct{}{}:
			<-dead // as a killed process: nothing more from this build
		default:
		}
	}
	if err := victim.Start(ctxT(t)); err != nil {
		t.Fatal(err)
	}
	w.deploy("shop", "first")
	id := w.request("shop", exportapi.UploadReady, reader).Export.ID
	select {
	case <-reached:
	case <-time.After(20 * time.Second):
		t.Fatal("the build did not start")
	}
	w.service(o)
	victimDeps.NC.Close()
	_ = victimDeps.Store.Close(ctxT(t))
	f := w.waitStatus(id, exportapi.StatusFailed)
	if !strings.Contains(f.Error, "stopped responding") || f.Attempts != 1 {
		t.Errorf("the export after its worker died: %+v", f)
	}
}
