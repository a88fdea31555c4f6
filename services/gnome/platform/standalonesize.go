package platform

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"time"

	"github.com/gnome-platform/gnome/libs/embedded"
	"github.com/gnome-platform/gnome/libs/scoped"
	"github.com/gnome-platform/gnome/libs/store"
)

// A standalone run on the embedded store warns when one of its
// experiment's collections is past the size where that store slows down
// (scoped.EmbeddedSlowDocuments): at start, for every collection past it,
// and then as soon as another one crosses it (looked at every
// sizeWatchEvery), in the log and on the terminal, naming the docker
// package, which runs the experiment on MongoDB, as the way up.

// sizeWatchEvery is how often the collections' sizes are looked at: they
// come from the store's statistics, which read no document.
const sizeWatchEvery = time.Minute

// slowDocumentsTestVar, set, replaces scoped.EmbeddedSlowDocuments: tests
// reach the threshold without loading thousands of documents.
const slowDocumentsTestVar = "GNOME_TEST_SLOW_DOCUMENTS"

// standaloneSlowDocuments is the threshold of the warnings.
func standaloneSlowDocuments() int64 {
	if v, err := strconv.ParseInt(os.Getenv(slowDocumentsTestVar), 10, 64); err == nil && v > 0 {
		return v
	}
	return scoped.EmbeddedSlowDocuments
}

// sizeWatch warns of the collections of slug past limit documents.
type sizeWatch struct {
	st    *store.Store
	slug  string
	limit int64
	log   *slog.Logger
	out   io.Writer
	// engine is the embedded store's (embedded.EngineSQLite or
	// EnginePostgres): it decides which requests read everything.
	engine string
	warned map[string]bool
}

// slowRequests says which requests read the whole collection on engine.
func slowRequests(engine string) string {
	if engine == embedded.EnginePostgres {
		return "sorts, counts, $group and range queries read the whole collection (finds by equality on an indexed field or _id stay fast)"
	}
	return "every request but a find, update or delete by _id reads the whole collection"
}

// check warns of every collection past the limit that it has not warned
// of yet, and forgets one that fell below it (deleted documents), so that
// crossing again warns again.
func (w *sizeWatch) check(ctx context.Context) {
	sizes, err := scoped.CollectionSizes(ctx, w.st.DB, w.slug)
	if err != nil {
		w.log.WarnContext(ctx, "the sizes of the experiment's collections cannot be read", "slug", w.slug, "err", err)
		return
	}
	for _, c := range sizes {
		if c.Documents <= w.limit {
			delete(w.warned, c.Name)
			continue
		}
		if w.warned[c.Name] {
			continue
		}
		w.warned[c.Name] = true
		w.log.WarnContext(ctx, "collection past the size where the embedded store slows down; MongoDB is the way up: export a docker package of the experiment and run it with docker compose",
			"slug", w.slug, "collection", c.Name, "documents", c.Documents, "slow_documents", w.limit)
		fmt.Fprintf(w.out, "\nwarning: collection %q of %q has %d documents, past the %d where the embedded store slows down:\n"+
			"  %s, so those now take over 100 ms and grow with the data.\n"+
			"  MongoDB is the way up: export a docker package (POST /api/experiments/%s/exports {\"type\": \"docker\"}, or Exports on\n"+
			"  the experiment's page) and run it with `docker compose up`, which runs the experiment on MongoDB.\n",
			c.Name, w.slug, c.Documents, w.limit, slowRequests(w.engine), w.slug)
	}
}

// watchStandaloneSizes checks at once, then every sizeWatchEvery until ctx
// ends.
func watchStandaloneSizes(ctx context.Context, w *sizeWatch) {
	w.warned = map[string]bool{}
	w.check(ctx)
	t := time.NewTicker(sizeWatchEvery)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			w.check(ctx)
		}
	}
}
