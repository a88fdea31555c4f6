package upload_test

import (
	"bytes"
	"errors"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

// The staged upload is read through the store's leader (bus.Objects): one
// that is not there is 404, one over the limit is 413 before any of it is
// read, and either way the staged object goes.
func TestStagedUploadsThatCannotBeProcessed(t *testing.T) {
	w := newWorld(t)
	w.cfg.MaxUploadSizeMB = 1
	w.start()
	ctx := ctxT(t)

	_, err := w.client.Process(ctx, uploadapi.ProcessUpload{UploadID: uploadapi.NewUploadID(), Caller: ann})
	wantCode(t, "processing an upload never staged", err, apierr.CodeNotFound)

	big := uploadapi.NewUploadID()
	if _, err := w.client.Staging.Put(ctx, big, bytes.NewReader(make([]byte, 1<<20+1))); err != nil {
		t.Fatal(err)
	}
	_, err = w.client.Process(ctx, uploadapi.ProcessUpload{UploadID: big, Size: 1<<20 + 1, Caller: ann})
	wantCode(t, "processing a staged upload over the limit", err, apierr.CodeBundleTooLarge)
	uploads, err := w.d.JS.ObjectStore(ctx, bus.ObjectUploads)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := uploads.GetInfo(ctx, big); !errors.Is(err, jetstream.ErrObjectNotFound) {
		t.Errorf("the refused staged upload is still there: %v", err)
	}

	// One within the limit is read whole and stored.
	if res := w.upload(ann, "fits", nil); res.Experiment.Slug != "fits" || res.Experiment.Version != 1 {
		t.Errorf("an upload within the limit: %+v", res.Experiment)
	}
}
