// Command gnome-bench measures the platform against references measured in
// the same run, so that every figure reads as a ratio that the machine's speed
// and load mostly cancel out of. It prints a table and, with -md, refreshes a
// section of a Markdown file.
//
// Every benchmark is one function in the benchmarks list below; -run picks
// benchmarks by a regular expression on their names.
//
// Targets are checked here and reported PASS or FAIL; they are not tests. With
// -strict the command exits with status 1 when any target is missed.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"regexp"
	"syscall"
	"time"
)

// benchmark is one entry of the suite. run returns the table rows (each a
// figure of g.nome beside its reference) and free-form lines with the raw
// figures behind them.
type benchmark struct {
	name string
	desc string
	run  func(ctx context.Context, e *env) (*outcome, error)
}

// outcome is what a benchmark reports.
type outcome struct {
	rows []row
	raw  []string
}

// benchmarks is the suite, in the order it runs.
var benchmarks = []benchmark{
	{"health", "GET /health at max rate over N connections: gnome serve vs a bare Fiber server", benchHealth},
	{"startup", "gnome serve on an existing DATA_DIR, exec to first /health 200, vs gnome --version", benchStartup},
	{"me", "GET /api/me with a session token vs GET /health on the same server", benchMe},
	{"revoke", "a personal API token revoked on one edge until another edge refuses it, p50/p99 of 50, vs a session signed out (separate processes)", benchRevoke},
	{"console", "the home page (signed out, signed in) and the admin list of 200 experiments: first byte, full body and Chromium DOMContentLoaded, vs GET /health on the same server", benchConsole},
	{"login", "sequential sign-ins vs the password hash check alone", benchLogin},
	{"upload", "10 MB experiment from POST to served vs unzip + SHA-256 of it in process", benchUpload},
	{"uploadmem", "edge resident memory growth during a 100 MB upload (services as separate processes)", benchUploadMemory},
	{"static", "GET of an experiment's page vs GET /health on the same server", benchStatic},
	{"actorcall", "GET of an actor's route (HTTP → NATS → WebAssembly) vs GET /health and vs calling the module in process; the same actor with instances: 2", benchActorCall},
	{"actorstart", "actor start, experiment made active → first 200, cold and warm compilation cache, vs compiling in process", benchActorStart},
	{"jsactor", "a JavaScript actor beside the Go echo actor on one gnome serve: cold start (empty cache) and warm start, active → first 200; the echo route's req/s", benchJSActor},
	{"export", "100 MB experiment (files and data) exported standalone, POST to ready, vs zip -r + sha256sum of its files; export service memory", benchExport},
	{"expsignin", "sign-in of an experiment's account on its origin vs a platform sign-in, the password hash apart", benchExpSignin},
	{"participant", "a participant's first request (cookie made and signed) vs a static page without sub_auth, same server", benchParticipant},
	{"failover", "SIGKILL of the actor-worker hosting an actor → served again by the other (separate processes)", benchFailover},
	{"livebroadcast", "a member's message to a room of 1,000 WebSockets on two edges, through the actor: delivery p99, vs a room of one (separate processes)", benchLiveBroadcast},
	{"liveidle", "edge memory growth holding 10,000 idle WebSockets (separate processes)", benchLiveIdle},
	{"actoridle", "worker memory per loaded idle actor, and of 200 experiments with 10 active and idle ones unloaded; an unloaded actor's first call (separate processes)", benchActorIdle},
	{"scale", "GET /api/me and the echo actor's route on a three-node NATS cluster (JetStream, replicas 3), one instance of each service vs two: req/s, p50/p99, scaling ratio (separate processes)", benchScale},
	{"clusterexport", "small upload-ready exports per second on the three-node cluster (one of each service) vs gnome serve", benchClusterExport},
	{"data", "an experiment's typical requests through the scoped data layer at 1,000, 10,000 and 100,000 documents (-data-sizes): embedded store on SQLite and PostgreSQL, MongoDB with MONGO_URI; median per request and slope per 1,000 documents", benchData},
}

func main() { os.Exit(run()) }

func run() int {
	var (
		e       env
		pattern = flag.String("run", ".", "run only the benchmarks whose name matches this regular expression")
		mdPath  = flag.String("md", "", "also write the results as a Markdown section into this file (the section is replaced if present)")
		list    = flag.Bool("list", false, "list the benchmarks and exit")
		strict  = flag.Bool("strict", false, "exit with status 1 when a target is missed")
	)
	flag.DurationVar(&e.duration, "duration", 5*time.Second, "length of each measured load run")
	flag.DurationVar(&e.warmup, "warmup", time.Second, "load applied and discarded before each measured run")
	flag.IntVar(&e.conns, "conns", 64, "concurrent connections (and workers) of the load generator")
	flag.IntVar(&e.rounds, "rounds", 2, "measured runs per server in load benchmarks, alternating servers; the best is reported")
	flag.IntVar(&e.starts, "starts", 5, "measured starts in the startup benchmark")
	flag.StringVar(&e.gnomeBin, "gnome", "bin/gnome", "the gnome binary under test (make build)")
	flag.StringVar(&e.bareBin, "bare", "", "a prebuilt bench/cmd/bare-fiber binary; built into a temporary directory when empty")
	flag.StringVar(&e.goCmd, "go", "go", "the go command used to build bare-fiber")
	flag.Parse()

	re, err := regexp.Compile(*pattern)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gnome-bench: -run:", err)
		return 2
	}
	var selected []benchmark
	for _, b := range benchmarks {
		if re.MatchString(b.name) {
			selected = append(selected, b)
		}
	}
	if *list {
		for _, b := range benchmarks {
			fmt.Printf("%-10s %s\n", b.name, b.desc)
		}
		return 0
	}
	if len(selected) == 0 {
		fmt.Fprintf(os.Stderr, "gnome-bench: no benchmark matches -run %q (see -list)\n", *pattern)
		return 2
	}
	if err := e.validate(); err != nil {
		fmt.Fprintln(os.Stderr, "gnome-bench:", err)
		return 2
	}

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	tmp, err := os.MkdirTemp("", "gnome-bench-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "gnome-bench:", err)
		return 1
	}
	defer os.RemoveAll(tmp)
	e.tmp = tmp
	e.progress = os.Stderr

	m := describeMachine(e.goCmd)
	rep := &report{machine: m, settings: e.settings()}
	fmt.Println(m.text())
	fmt.Println("Note: the load generator and the server under test share these cores; absolute figures are")
	fmt.Println("lower than on a dedicated load machine, which is why every figure is read against a reference.")
	fmt.Println()

	failed := false
	for _, b := range selected {
		e.logf("== %s: %s", b.name, b.desc)
		start := time.Now()
		out, err := b.run(ctx, &e)
		if err != nil {
			if errors.Is(ctx.Err(), context.Canceled) {
				fmt.Fprintln(os.Stderr, "gnome-bench: interrupted")
				return 130
			}
			fmt.Fprintf(os.Stderr, "gnome-bench: %s: %v\n", b.name, err)
			return 1
		}
		e.logf("== %s done in %s", b.name, time.Since(start).Round(100*time.Millisecond))
		rep.add(b.name, out)
	}

	rep.writeText(os.Stdout)
	for _, r := range rep.rows {
		if r.verdict() == "FAIL" {
			failed = true
		}
	}
	if *mdPath != "" {
		if err := writeMarkdownSection(*mdPath, rep); err != nil {
			fmt.Fprintln(os.Stderr, "gnome-bench: -md:", err)
			return 1
		}
		fmt.Printf("\nMarkdown section written to %s\n", *mdPath)
	}
	if failed && *strict {
		return 1
	}
	return 0
}

// env is what benchmarks share: settings, binaries and a scratch directory.
type env struct {
	duration, warmup time.Duration
	conns            int
	rounds, starts   int
	gnomeBin         string
	bareBin          string
	goCmd            string
	tmp              string
	progress         io.Writer
}

func (e *env) validate() error {
	switch {
	case e.duration <= 0 || e.duration > 10*time.Minute:
		return fmt.Errorf("-duration must be in (0, 10m], got %s", e.duration)
	case e.warmup < 0 || e.warmup > time.Minute:
		return fmt.Errorf("-warmup must be in [0, 1m], got %s", e.warmup)
	case e.conns < 1 || e.conns > 4096:
		return fmt.Errorf("-conns must be in [1, 4096], got %d", e.conns)
	case e.rounds < 1 || e.rounds > 20:
		return fmt.Errorf("-rounds must be in [1, 20], got %d", e.rounds)
	case e.starts < 1 || e.starts > 100:
		return fmt.Errorf("-starts must be in [1, 100], got %d", e.starts)
	}
	if _, err := os.Stat(e.gnomeBin); err != nil {
		return fmt.Errorf("gnome binary: %v (run make build, or pass -gnome)", err)
	}
	return nil
}

func (e *env) settings() string {
	return fmt.Sprintf("-duration %s -warmup %s -conns %d -rounds %d -starts %d", e.duration, e.warmup, e.conns, e.rounds, e.starts)
}

// logf writes a progress line to stderr, apart from the results on stdout.
func (e *env) logf(format string, args ...any) {
	fmt.Fprintf(e.progress, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
}
