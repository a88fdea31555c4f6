package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/gnome-platform/gnome/libs/bundle"
	"github.com/gnome-platform/gnome/libs/embedded"
	"github.com/gnome-platform/gnome/libs/scoped"
)

var (
	dataSizes   = flag.String("data-sizes", "1000,10000,100000", "data benchmark: collection sizes in documents, ascending, comma-separated")
	dataEngines = flag.String("data-engines", "sqlite,postgres", "data benchmark: embedded engines to measure (sqlite, postgres); MongoDB is added when MONGO_URI is set")
	dataReps    = flag.Int("data-reps", 5, "data benchmark: measured requests per operation and size (fewer once they have taken 3 s, at least one); the median is reported")
)

// dataBudget bounds the measuring time of one operation at one size, so that
// a store that reads whole collections still finishes in minutes.
const dataBudget = 3 * time.Second

// firstInserted is the number of the first click the insert request adds:
// past every loaded size, so that loads and inserts never share a key.
const firstInserted = 1 << 30

// dataSlug is the experiment the benchmark's data belongs to.
const dataSlug = "bench-data"

// dataOp is one of an experiment's typical requests, made through the
// scoped data layer as an actor's db host operations make them.
type dataOp struct {
	name string
	desc string
	run  func(ctx context.Context, s *scoped.Scope, n int, rng *rand.Rand) error
}

var clicks = scoped.Own("clicks")

func dataOps(next *int) []dataOp {
	return []dataOp{
		{"insert", "insert_one of a click", func(ctx context.Context, s *scoped.Scope, n int, _ *rand.Rand) error {
			*next++
			_, err := s.InsertOne(ctx, clicks, click(*next))
			return err
		}},
		{"find", "find by an indexed field (1 match)", func(ctx context.Context, s *scoped.Scope, n int, rng *rand.Rand) error {
			docs, err := s.Find(ctx, clicks, bson.D{{Key: "key", Value: clickKey(rng.IntN(n))}}, scoped.FindOptions{})
			if err == nil && len(docs) != 1 {
				err = fmt.Errorf("find by key: %d documents, want 1", len(docs))
			}
			return err
		}},
		{"by_id", "find by _id (1 match)", func(ctx context.Context, s *scoped.Scope, n int, rng *rand.Rand) error {
			docs, err := s.Find(ctx, clicks, bson.D{{Key: "_id", Value: clickID(rng.IntN(n))}}, scoped.FindOptions{})
			if err == nil && len(docs) != 1 {
				err = fmt.Errorf("find by _id: %d documents, want 1", len(docs))
			}
			return err
		}},
		{"update", "update_one by _id ($inc, 1 match)", func(ctx context.Context, s *scoped.Scope, n int, rng *rand.Rand) error {
			r, err := s.UpdateOne(ctx, clicks, bson.D{{Key: "_id", Value: clickID(rng.IntN(n))}}, bson.D{{Key: "$inc", Value: bson.D{{Key: "value", Value: 1}}}}, scoped.UpdateOptions{})
			if err == nil && (r.Matched != 1 || r.Modified != 1) {
				err = fmt.Errorf("update by _id: matched %d, modified %d, want 1 and 1", r.Matched, r.Modified)
			}
			return err
		}},
		{"delete", "delete_one by _id (1 match)", func(ctx context.Context, s *scoped.Scope, n int, _ *rand.Rand) error {
			// The click the last insert added: the collection stays at its
			// size, as insert runs before delete, as often or more.
			if *next <= firstInserted {
				return errors.New("delete by _id: no inserted click left to delete")
			}
			d, err := s.DeleteOne(ctx, clicks, bson.D{{Key: "_id", Value: clickID(*next)}})
			*next--
			if err == nil && d != 1 {
				err = fmt.Errorf("delete by _id: deleted %d, want 1", d)
			}
			return err
		}},
		{"sort", "sort by an indexed field, limit 5", func(ctx context.Context, s *scoped.Scope, n int, _ *rand.Rand) error {
			docs, err := s.Find(ctx, clicks, bson.D{}, scoped.FindOptions{Sort: bson.D{{Key: "ts", Value: -1}}, Limit: 5})
			if err == nil && len(docs) != 5 {
				err = fmt.Errorf("sort with limit 5: %d documents", len(docs))
			}
			return err
		}},
		{"count", "count with a filter on an indexed field", func(ctx context.Context, s *scoped.Scope, n int, _ *rand.Rand) error {
			c, err := s.Count(ctx, clicks, bson.D{{Key: "button", Value: "b3"}})
			if err == nil && c < int64(n/8) {
				err = fmt.Errorf("count: %d, want at least %d", c, n/8)
			}
			return err
		}},
		{"group", "$group by button, $sum: 1", func(ctx context.Context, s *scoped.Scope, n int, _ *rand.Rand) error {
			docs, err := s.Aggregate(ctx, clicks, bson.A{bson.D{{Key: "$group", Value: bson.D{{Key: "_id", Value: "$button"}, {Key: "n", Value: bson.D{{Key: "$sum", Value: 1}}}}}}})
			if err == nil && len(docs) != 8 {
				err = fmt.Errorf("$group: %d groups, want 8", len(docs))
			}
			return err
		}},
	}
}

func clickKey(i int) string { return fmt.Sprintf("k%08d", i) }
func clickID(i int) string  { return fmt.Sprintf("c%08d", i) }

// click is the i-th document: a button press of a participant, about 200
// bytes as stored.
func click(i int) bson.D {
	return bson.D{
		{Key: "_id", Value: clickID(i)},
		{Key: "key", Value: clickKey(i)},
		{Key: "button", Value: "b" + strconv.Itoa(i%8)},
		{Key: "ts", Value: int64(1_700_000_000_000 + i)},
		{Key: "participant", Value: "p" + strconv.Itoa(i%997)},
		{Key: "value", Value: float64(i%100) / 7},
		{Key: "note", Value: "a short free-text answer of a participant"},
	}
}

// dataIndexes are the experiment's managed indexes, built as an upload
// builds them.
var dataIndexes = []bundle.IndexSpec{
	{Name: "key_1", Keys: bundle.IndexKeys{{Field: "key", Direction: 1}}, Options: map[string]any{"unique": true}},
	{Name: "button_1", Keys: bundle.IndexKeys{{Field: "button", Direction: 1}}},
	{Name: "ts_-1", Keys: bundle.IndexKeys{{Field: "ts", Direction: -1}}},
}

// dataTarget is the target for the default store: a find or a
// sort with a limit on an indexed field at the largest size within this
// many times its time at the smallest, and under dataCeiling.
const (
	dataGrowth  = 10
	dataCeiling = 20 * time.Millisecond
)

// benchData runs the typical requests at growing sizes on each engine.
func benchData(ctx context.Context, e *env) (*outcome, error) {
	sizes, err := parseSizes(*dataSizes)
	if err != nil {
		return nil, err
	}
	if *dataReps < 1 || *dataReps > 101 {
		return nil, fmt.Errorf("-data-reps must be in [1, 101], got %d", *dataReps)
	}
	out := &outcome{}
	out.raw = append(out.raw, "requests go through libs/scoped as an actor's db host operations make them: experiment_id is ANDed to every filter and $match-ed first in every pipeline, which decides what the store can push down")
	var engines []string
	for _, name := range strings.Split(*dataEngines, ",") {
		name = strings.TrimSpace(name)
		switch name {
		case "":
		case embedded.EngineSQLite, embedded.EnginePostgres:
			engines = append(engines, name)
		default:
			return nil, fmt.Errorf("-data-engines: %q is neither sqlite nor postgres", name)
		}
	}
	// The targets are the default store's: what EMBEDDED_STORE=auto picks
	// on this machine for a fresh DATA_DIR.
	def := embedded.EngineSQLite
	if _, err := embedded.FindPostgres(); err == nil {
		def = embedded.EnginePostgres
	}
	for _, engine := range engines {
		if engine == embedded.EnginePostgres {
			if _, err := embedded.FindPostgres(); err != nil {
				out.raw = append(out.raw, "postgres: skipped: "+err.Error())
				continue
			}
		}
		res, err := e.dataEngine(ctx, engine, sizes)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", engine, err)
		}
		out.add(res, engine == def)
	}
	if uri := os.Getenv("MONGO_URI"); uri != "" {
		res, err := e.dataMongo(ctx, uri, sizes)
		if err != nil {
			return nil, fmt.Errorf("mongodb: %w", err)
		}
		out.add(res, false)
	} else {
		out.raw = append(out.raw, "mongodb: skipped (set MONGO_URI to measure it)")
	}
	return out, nil
}

// dataResult is one engine's medians per operation and size.
type dataResult struct {
	engine string
	sizes  []int
	ops    []dataOp
	med    map[string][]time.Duration // op -> median per size
	load   []time.Duration            // time to bring the collection to each size
	notes  []string
}

func (o *outcome) add(r *dataResult, isDefault bool) {
	o.raw = append(o.raw, fmt.Sprintf("%s: median per request (slope = least-squares time per 1,000 more documents):", r.engine))
	head := fmt.Sprintf("  %-7s", "op")
	for _, n := range r.sizes {
		head += fmt.Sprintf(" %12s", fmtRate(float64(n)))
	}
	o.raw = append(o.raw, head+"   slope/1k docs")
	for _, op := range r.ops {
		line := fmt.Sprintf("  %-7s", op.name)
		for _, d := range r.med[op.name] {
			line += fmt.Sprintf(" %12s", fmtDur(d))
		}
		o.raw = append(o.raw, line+"   "+fmtDur(time.Duration(slope(r.sizes, r.med[op.name])*1000)))
	}
	var loads []string
	for i, n := range r.sizes {
		loads = append(loads, fmt.Sprintf("%s docs in %s", fmtRate(float64(n)), fmtDur(r.load[i])))
	}
	o.raw = append(o.raw, "  bulk load (insert_many of 1,000): "+strings.Join(loads, ", "))
	for _, n := range r.notes {
		o.raw = append(o.raw, "  "+n)
	}
	first, last := 0, len(r.sizes)-1
	sizeName := fmtRate(float64(r.sizes[last]))
	for _, op := range []string{"find", "sort", "by_id", "update", "delete", "count", "group"} {
		m := r.med[op]
		growth, ceiling := noTarget(), noTarget()
		if isDefault && (op == "find" || op == "sort") {
			growth, ceiling = atMostRatio(dataGrowth), below(dataCeiling)
		}
		o.rows = append(o.rows,
			row{metric: fmt.Sprintf("%s %s at %s docs", r.engine, op, sizeName), unit: unitDur, got: float64(m[last]), ref: float64(m[first]), refName: fmt.Sprintf("same at %s docs", fmtRate(float64(r.sizes[first]))), target: growth},
		)
		if isDefault && (op == "find" || op == "sort") {
			o.rows = append(o.rows, row{metric: fmt.Sprintf("%s %s at %s docs, absolute", r.engine, op, sizeName), unit: unitDur, got: float64(m[last]), ref: float64(m[first]), refName: fmt.Sprintf("same at %s docs", fmtRate(float64(r.sizes[first]))), target: ceiling})
		}
	}
}

// dataEngine starts the embedded store on engine in a fresh directory and
// measures it.
func (e *env) dataEngine(ctx context.Context, engine string, sizes []int) (*dataResult, error) {
	// A directory others may enter: PostgreSQL runs as user postgres when
	// the benchmark runs as root.
	base, err := os.MkdirTemp("", "gnome-bench-data-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(base)
	if err := os.Chmod(base, 0o711); err != nil {
		return nil, err
	}
	dir := filepath.Join(base, "db")
	t0 := time.Now()
	st, err := embedded.StartStoreEngine(dir, "127.0.0.1:0", engine, nil)
	if err != nil {
		return nil, err
	}
	fresh := time.Since(t0)
	stopped := false
	defer func() {
		if !stopped {
			st.Shutdown()
		}
	}()
	res := &dataResult{engine: "embedded " + engine}
	client, err := mongo.Connect(options.Client().ApplyURI(st.URI()))
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	defer client.Disconnect(context.WithoutCancel(ctx))
	db := client.Database("gnome")
	if err := e.dataMeasure(ctx, db, scoped.StoreFerretDB, sizes, res); err != nil {
		return nil, err
	}
	// Memory with the largest collection loaded and queried.
	self, _ := rss(os.Getpid())
	mem := fmt.Sprintf("resident memory after the run: this process (FerretDB in it) %s", fmtBytes(self))
	if pg := st.Postgres(); pg != nil {
		mem += fmt.Sprintf(", PostgreSQL processes %s", fmtBytes(groupRSS(pg.PID())))
	}
	res.notes = append(res.notes, mem)
	// A restart on the loaded directory: what `gnome serve` pays at start.
	client.Disconnect(context.WithoutCancel(ctx))
	st.Shutdown()
	stopped = true
	t1 := time.Now()
	st2, err := embedded.StartStoreEngine(dir, "127.0.0.1:0", engine, nil)
	if err != nil {
		return nil, fmt.Errorf("restart: %w", err)
	}
	c2, err := mongo.Connect(options.Client().ApplyURI(st2.URI()))
	if err == nil {
		err = c2.Database("gnome").RunCommand(ctx, bson.D{{Key: "ping", Value: 1}}).Err()
		_ = c2.Disconnect(context.WithoutCancel(ctx))
	}
	restart := time.Since(t1)
	st2.Shutdown()
	if err != nil {
		return nil, fmt.Errorf("restart ping: %w", err)
	}
	res.notes = append(res.notes, fmt.Sprintf("start on an empty directory %s (PostgreSQL: initdb included); restart on the loaded one to first answer %s", fmtDur(fresh), fmtDur(restart)))
	return res, nil
}

func (e *env) dataMongo(ctx context.Context, uri string, sizes []int) (*dataResult, error) {
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	defer client.Disconnect(context.WithoutCancel(ctx))
	db := client.Database(fmt.Sprintf("gnome_bench_data_%d", time.Now().UnixNano()))
	defer db.Drop(context.WithoutCancel(ctx))
	res := &dataResult{engine: "mongodb"}
	return res, e.dataMeasure(ctx, db, scoped.StoreMongoDB, sizes, res)
}

// dataMeasure grows the collection to each size in turn with insert_many
// and measures every operation there.
func (e *env) dataMeasure(ctx context.Context, db *mongo.Database, kind scoped.StoreKind, sizes []int, res *dataResult) error {
	s, err := scoped.New(db, dataSlug, nil, scoped.WithStore(kind))
	if err != nil {
		return err
	}
	for _, ix := range dataIndexes {
		if err := scoped.CreateIndex(ctx, db, dataSlug, "clicks", ix); err != nil {
			return fmt.Errorf("create index %s: %w", ix.Name, err)
		}
	}
	next := firstInserted
	ops := dataOps(&next)
	res.sizes, res.ops, res.med = sizes, ops, map[string][]time.Duration{}
	rng := rand.New(rand.NewPCG(1, 2))
	have := 0
	for _, n := range sizes {
		t0 := time.Now()
		for have < n {
			batch := make(bson.A, 0, 1000)
			for ; have < n && len(batch) < 1000; have++ {
				batch = append(batch, click(have))
			}
			if _, err := s.InsertMany(ctx, clicks, batch); err != nil {
				return fmt.Errorf("load to %d: %w", n, err)
			}
		}
		res.load = append(res.load, time.Since(t0))
		e.logf("%s: %s documents loaded in %s", res.engine, fmtRate(float64(n)), fmtDur(time.Since(t0)))
		for _, op := range ops {
			var ds []time.Duration
			spent := time.Duration(0)
			// Past the budget a request is not repeated: one taking seconds
			// says enough, and the run stays within minutes.
			for i := 0; i < *dataReps && spent < dataBudget; i++ {
				t := time.Now()
				if err := op.run(ctx, s, n, rng); err != nil {
					return fmt.Errorf("%s at %d: %w", op.name, n, err)
				}
				d := time.Since(t)
				ds = append(ds, d)
				spent += d
			}
			res.med[op.name] = append(res.med[op.name], median(ds))
			e.logf("%s: %-6s at %s docs: median %s of %d", res.engine, op.name, fmtRate(float64(n)), fmtDur(median(ds)), len(ds))
			if err := ctx.Err(); err != nil {
				return err
			}
		}
	}
	return nil
}

// slope is the least-squares slope of ds over ns, in nanoseconds per
// document.
func slope(ns []int, ds []time.Duration) float64 {
	if len(ns) < 2 {
		return 0
	}
	var mx, my float64
	for i := range ns {
		mx += float64(ns[i])
		my += float64(ds[i])
	}
	mx /= float64(len(ns))
	my /= float64(len(ns))
	var num, den float64
	for i := range ns {
		num += (float64(ns[i]) - mx) * (float64(ds[i]) - my)
		den += (float64(ns[i]) - mx) * (float64(ns[i]) - mx)
	}
	if den == 0 {
		return 0
	}
	return num / den
}

func parseSizes(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 10 || n > 10_000_000 {
			return nil, fmt.Errorf("-data-sizes: %q is not a size between 10 and 10,000,000", f)
		}
		if len(out) > 0 && n <= out[len(out)-1] {
			return nil, errors.New("-data-sizes: sizes must be ascending")
		}
		out = append(out, n)
	}
	return out, nil
}

// groupRSS is the resident memory of every process in process group pgid
// (PostgreSQL's postmaster and its backends), shared pages counted in each.
func groupRSS(pgid int) int64 {
	entries, _ := os.ReadDir("/proc")
	var total int64
	for _, en := range entries {
		pid, err := strconv.Atoi(en.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", en.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after the command's closing parenthesis: state ppid pgrp.
		i := strings.LastIndexByte(string(b), ')')
		f := strings.Fields(string(b[i+1:]))
		if len(f) > 2 && f[2] == strconv.Itoa(pgid) {
			if r, err := rss(pid); err == nil {
				total += r
			}
		}
	}
	return total
}
