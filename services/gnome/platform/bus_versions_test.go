package platform_test

import (
	"context"
	"maps"
	"testing"

	"github.com/gnome-platform/gnome/libs/apierr"
	"github.com/gnome-platform/gnome/libs/bus"
	"github.com/gnome-platform/gnome/libs/svc"
	"github.com/gnome-platform/gnome/libs/testenv"
	"github.com/gnome-platform/gnome/libs/uploadapi"
)

// ridRollbackUnknown is the versions exercise's refused call.
const ridRollbackUnknown = "probe-rollback-unknown-version"

func init() {
	maps.Copy(wantErrors, map[string]apierr.Code{ridRollbackUnknown: apierr.CodeNotFound})
}

// exerciseVersions calls the versions endpoints of the upload service as
// the edge does: two uploads, the list, a rollback to the first (which
// publishes events.experiment.updated), and a rollback to a version the
// experiment never had.
func exerciseVersions(ctx context.Context, t *testing.T, d *svc.Deps) {
	t.Helper()
	const slug = "bus-versions"
	uploads, err := d.JS.ObjectStore(ctx, bus.ObjectUploads)
	if err != nil {
		t.Fatal(err)
	}
	owner := testenv.Caller(busAdminEmail, "admin")
	for i, name := range []string{"first", "second"} {
		archive := experimentZIP(t, map[string]any{"schema_version": "2.0", "slug": slug, "name": name, "status": "active"})
		id := "up-versions-" + name
		if _, err := uploads.PutBytes(ctx, id, archive); err != nil {
			t.Fatal(err)
		}
		res, err := call(ctx, d.NC, "versions-upload-"+name, uploadapi.EndpointProcess,
			uploadapi.ProcessUpload{UploadID: id, Size: int64(len(archive)), Caller: owner})
		if err != nil || res.Experiment.Version != i+1 {
			t.Fatalf("upload %s: %+v %v", name, res, err)
		}
	}
	l, err := call(ctx, d.NC, "versions-list", uploadapi.EndpointVersions, uploadapi.VersionsQuery{Slug: slug, Caller: owner})
	if err != nil || l.Current != 2 || len(l.Versions) != 2 || l.Versions[0].Name != "second" || !l.Versions[1].Available {
		t.Fatalf("upload.versions: %+v %v", l, err)
	}
	r, err := call(ctx, d.NC, "versions-rollback", uploadapi.EndpointRollback, uploadapi.Rollback{Slug: slug, Version: 1, Caller: owner})
	if err != nil || !r.Changed || r.From != 2 || r.Experiment.Version != 1 {
		t.Fatalf("upload.rollback: %+v %v", r, err)
	}
	_, err = call(ctx, d.NC, ridRollbackUnknown, uploadapi.EndpointRollback, uploadapi.Rollback{Slug: slug, Version: 9, Caller: owner})
	wantCode(t, "upload.rollback to a version never made", err, apierr.CodeNotFound)
}
