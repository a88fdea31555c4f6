package main

import (
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// clockTick is USER_HZ, the unit of /proc CPU times; 100 on every Linux
// platform Go runs on.
const clockTick = 100

// cpuSample is a snapshot of CPU time: the machine's busy time, this
// process's and the server's.
type cpuSample struct {
	at                 time.Time
	busy, self, server float64 // seconds
	ok                 bool
}

// sampleCPU reads /proc; ok is false where /proc is unavailable.
func sampleCPU(serverPID int) cpuSample {
	s := cpuSample{at: time.Now()}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s
	}
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 8 || f[0] != "cpu" {
		return s
	}
	// user nice system idle iowait irq softirq steal: busy is all but idle
	// and iowait.
	for i, v := range f[1:] {
		if i == 3 || i == 4 || i >= 8 {
			continue
		}
		n, _ := strconv.ParseFloat(v, 64)
		s.busy += n / clockTick
	}
	var ok1, ok2 bool
	s.self, ok1 = procCPU("self")
	s.server, ok2 = procCPU(strconv.Itoa(serverPID))
	s.ok = ok1 && ok2
	return s
}

// procCPU is utime+stime of /proc/<pid>, in seconds.
func procCPU(pid string) (float64, bool) {
	b, err := os.ReadFile("/proc/" + pid + "/stat")
	if err != nil {
		return 0, false
	}
	// The command name may hold spaces: fields start after the last ')'.
	i := strings.LastIndexByte(string(b), ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(string(b)[i+1:])
	if len(f) < 13 {
		return 0, false
	}
	u, _ := strconv.ParseFloat(f[11], 64)
	st, _ := strconv.ParseFloat(f[12], 64)
	return (u + st) / clockTick, true
}

// cpuShare is how the machine's CPUs were used between two samples, in cores.
type cpuShare struct {
	server, loadgen, other float64
	ok                     bool
}

func cpuBetween(a, b cpuSample) cpuShare {
	wall := b.at.Sub(a.at).Seconds()
	if !a.ok || !b.ok || wall <= 0 {
		return cpuShare{}
	}
	sh := cpuShare{
		server:  (b.server - a.server) / wall,
		loadgen: (b.self - a.self) / wall,
		ok:      true,
	}
	sh.other = max((b.busy-a.busy)/wall-sh.server-sh.loadgen, 0)
	return sh
}

func (c cpuShare) String() string {
	if !c.ok {
		return "CPU use unknown"
	}
	return fmt.Sprintf("CPU cores used: server %.2f, load generator %.2f, other processes %.2f (of %d)",
		c.server, c.loadgen, c.other, runtime.NumCPU())
}
