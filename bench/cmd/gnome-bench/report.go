package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

type unit int

const (
	unitRate  unit = iota // per second
	unitDur               // nanoseconds
	unitPct               // fraction
	unitBytes             // bytes
)

func (u unit) format(v float64) string {
	switch u {
	case unitRate:
		return fmtRate(v) + "/s"
	case unitDur:
		return fmtDur(time.Duration(v))
	case unitPct:
		return fmtPct(v)
	case unitBytes:
		return fmtBytes(int64(v))
	}
	return strconv.FormatFloat(v, 'g', 4, 64)
}

// target is what a row's figure must meet; a nil check makes it
// informational.
type target struct {
	desc  string
	check func(r row) bool
}

func noTarget() target { return target{desc: "none (info)"} }

func atLeastRatio(x float64) target {
	return target{fmt.Sprintf("ratio ≥ %.2f", x), func(r row) bool { return r.ratio() >= x }}
}

func atMostRatio(x float64) target {
	return target{fmt.Sprintf("ratio ≤ %.2f", x), func(r row) bool { return r.ratio() <= x }}
}

func below(d time.Duration) target {
	return target{"g.nome < " + fmtDur(d), func(r row) bool { return time.Duration(r.got) < d }}
}

func atMostDur(d time.Duration) target {
	return target{"g.nome ≤ " + fmtDur(d), func(r row) bool { return time.Duration(r.got) <= d }}
}

func atLeastRate(x float64) target {
	return target{"g.nome ≥ " + fmtRate(x) + "/s", func(r row) bool { return r.got >= x }}
}

func atMostAbs(bytes int64) target {
	return target{"g.nome ≤ " + fmtBytes(bytes), func(r row) bool { return r.got <= float64(bytes) }}
}

func bothFull() target {
	return target{"100% on both", func(r row) bool { return r.got == 1 && r.ref == 1 }}
}

// row is one figure of g.nome beside its reference from the same run.
type row struct {
	bench   string
	metric  string
	unit    unit
	got     float64
	ref     float64
	refName string
	target  target
}

func (r row) ratio() float64 {
	if r.ref == 0 {
		return math.NaN()
	}
	return r.got / r.ref
}

func (r row) verdict() string {
	if r.target.check == nil {
		return "info"
	}
	if r.target.check(r) {
		return "PASS"
	}
	return "FAIL"
}

func fmtRatio(x float64) string {
	switch {
	case math.IsNaN(x):
		return "n/a"
	case x >= 10:
		return fmt.Sprintf("%.0f×", x)
	}
	return fmt.Sprintf("%.2f×", x)
}

func fmtRate(v float64) string {
	s := strconv.FormatInt(int64(math.Round(v)), 10)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}

func fmtDur(d time.Duration) string {
	switch {
	case d >= time.Second:
		return trimZeros(strconv.FormatFloat(d.Seconds(), 'f', 2, 64)) + " s"
	case d >= 10*time.Millisecond:
		return strconv.FormatFloat(float64(d)/1e6, 'f', 0, 64) + " ms"
	case d >= time.Millisecond:
		return trimZeros(strconv.FormatFloat(float64(d)/1e6, 'f', 2, 64)) + " ms"
	case d >= 100*time.Microsecond:
		return strconv.FormatFloat(float64(d)/1e3, 'f', 0, 64) + " µs"
	}
	return trimZeros(strconv.FormatFloat(float64(d)/1e3, 'f', 1, 64)) + " µs"
}

// trimZeros drops the trailing zeros of a decimal: 2.50 → 2.5, 2.00 → 2.
func trimZeros(s string) string {
	if !strings.Contains(s, ".") {
		return s
	}
	return strings.TrimSuffix(strings.TrimRight(s, "0"), ".")
}

func fmtPct(f float64) string { return strconv.FormatFloat(f*100, 'f', 2, 64) + "%" }

// machine describes where the figures were measured.
type machine struct {
	cpus      int
	cpuModel  string
	memGiB    float64
	goVersion string
	osArch    string
	kernel    string
	date      time.Time
}

func describeMachine(goCmd string) machine {
	m := machine{cpus: runtime.NumCPU(), cpuModel: "unknown", osArch: runtime.GOOS + "/" + runtime.GOARCH, date: time.Now().UTC()}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.cpuModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if f, err := os.Open("/proc/meminfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if fs := strings.Fields(sc.Text()); len(fs) >= 2 && fs[0] == "MemTotal:" {
				kb, _ := strconv.ParseFloat(fs[1], 64)
				m.memGiB = kb / (1 << 20)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.kernel = strings.TrimSpace(string(b))
	}
	m.goVersion = runtime.Version()
	if out, err := exec.Command(goCmd, "env", "GOVERSION").Output(); err == nil && len(bytes.TrimSpace(out)) > 0 {
		m.goVersion = string(bytes.TrimSpace(out))
	}
	return m
}

func (m machine) text() string {
	k := ""
	if m.kernel != "" {
		k = ", Linux " + m.kernel
	}
	return fmt.Sprintf("Machine: %d CPUs (%s), %.1f GiB RAM, %s%s, %s; %s",
		m.cpus, m.cpuModel, m.memGiB, m.osArch, k, m.goVersion, m.date.Format("2006-01-02 15:04 UTC"))
}

// report gathers the rows and raw figures of every benchmark that ran.
type report struct {
	machine  machine
	settings string
	rows     []row
	raw      []string
}

func (r *report) add(bench string, o *outcome) {
	for _, x := range o.rows {
		x.bench = bench
		r.rows = append(r.rows, x)
	}
	for _, s := range o.raw {
		r.raw = append(r.raw, bench+": "+s)
	}
}

var header = []string{"Benchmark", "Metric", "g.nome", "Reference", "Ref. figure", "Ratio", "Target", "Result"}

func (x row) cells() []string {
	return []string{x.bench, x.metric, x.unit.format(x.got), x.refName, x.unit.format(x.ref), fmtRatio(x.ratio()), x.target.desc, x.verdict()}
}

func (r *report) writeText(w io.Writer) {
	fmt.Fprintf(w, "Settings: %s\n\n", r.settings)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, x := range r.rows {
		fmt.Fprintln(tw, strings.Join(x.cells(), "\t"))
	}
	tw.Flush()
	if len(r.raw) > 0 {
		fmt.Fprintln(w, "\nRaw figures:")
		for _, s := range r.raw {
			fmt.Fprintln(w, "  "+s)
		}
	}
}

// Markers delimit the generated section of a Markdown file.
const (
	mdBegin = "<!-- gnome-bench results: begin -->"
	mdEnd   = "<!-- gnome-bench results: end -->"
)

func (r *report) markdown() string {
	var b strings.Builder
	fmt.Fprintln(&b, mdBegin)
	fmt.Fprintf(&b, "%s.\n\n", r.machine.text())
	fmt.Fprintf(&b, "Settings: `%s`. The load generator shares the cores with the server under test.\n\n", r.settings)
	fmt.Fprintf(&b, "| %s |\n", strings.Join(header, " | "))
	fmt.Fprintf(&b, "|%s\n", strings.Repeat("---|", len(header)))
	for _, x := range r.rows {
		c := x.cells()
		if v := c[len(c)-1]; v == "PASS" || v == "FAIL" {
			c[len(c)-1] = "**" + v + "**"
		}
		fmt.Fprintf(&b, "| %s |\n", strings.Join(c, " | "))
	}
	if len(r.raw) > 0 {
		fmt.Fprint(&b, "\nRaw figures:\n\n")
		for _, s := range r.raw {
			fmt.Fprintf(&b, "- %s\n", s)
		}
	}
	fmt.Fprintln(&b, mdEnd)
	return b.String()
}

// writeMarkdownSection replaces the marked section of path with the report,
// appends it when the file has none, or creates the file.
func writeMarkdownSection(path string, r *report) error {
	sec := r.markdown()
	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	s := string(old)
	i, j := strings.Index(s, mdBegin), strings.Index(s, mdEnd)
	switch {
	case i >= 0 && j > i:
		s = s[:i] + strings.TrimSuffix(sec, "\n") + s[j+len(mdEnd):]
	case len(s) == 0:
		s = sec
	default:
		s = strings.TrimRight(s, "\n") + "\n\n" + sec
	}
	return os.WriteFile(path, []byte(s), 0o644)
}
