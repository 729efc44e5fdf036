package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/pprof/profile"
)

// cpuTimes are the CPU seconds (user + system) spent so far by the
// portal, by each PostgreSQL process (by PID), and by this program (the
// load generator), read together.
type cpuTimes struct {
	portal, generator time.Duration
	postgres          map[int]time.Duration
}

// pgTotal is the CPU time of every PostgreSQL process together.
func (c cpuTimes) pgTotal() time.Duration {
	var t time.Duration
	for _, d := range c.postgres {
		t += d
	}
	return t
}

// clockTick is the unit of utime and stime in /proc/PID/stat: USER_HZ,
// 100 on every Linux architecture Go runs on.
const clockTick = 10 * time.Millisecond

func readCPU(portalPID int) (cpuTimes, error) {
	c := cpuTimes{postgres: map[int]time.Duration{}}
	var err error
	if c.portal, err = procCPU(portalPID); err != nil {
		return c, err
	}
	for pid, p := range procsCPU(map[string]bool{"postgres": true}) {
		c.postgres[pid] = p.cpu
	}
	c.generator, err = selfCPU()
	return c, err
}

// procCPUOf is one process's CPU time, with its name.
type procCPUOf struct {
	comm string
	cpu  time.Duration
}

// procsCPU reads the CPU time of every process whose name
// (/proc/PID/comm) is in comms, by PID.
func procsCPU(comms map[string]bool) map[int]procCPUOf {
	out := map[int]procCPUOf{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		comm, err := os.ReadFile(filepath.Join(d, "comm"))
		if err != nil {
			continue
		}
		name := strings.TrimSpace(string(comm))
		if !comms[name] {
			continue
		}
		pid, _ := strconv.Atoi(filepath.Base(d))
		if t, err := procCPU(pid); err == nil {
			out[pid] = procCPUOf{comm: name, cpu: t}
		}
	}
	return out
}

// selfCPU is this program's CPU time (user + system).
func selfCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, fmt.Errorf("getrusage: %w", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// sub is what was spent from o to c. A PostgreSQL process that ended in
// between is not counted (its time is gone with it); one that started
// counts in full.
func (c cpuTimes) sub(o cpuTimes) cpuTimes {
	d := cpuTimes{portal: c.portal - o.portal, generator: c.generator - o.generator, postgres: map[int]time.Duration{}}
	for pid, t := range c.postgres {
		d.postgres[pid] = t - o.postgres[pid]
	}
	return d
}

// procCPU reads a process's utime + stime.
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name (field 2) is in parentheses and may hold spaces:
	// count fields after its closing one. utime and stime are fields 14
	// and 15, so the 12th and 13th after it.
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	u, err1 := strconv.ParseInt(f[11], 10, 64)
	k, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc/%d/stat: utime %q, stime %q", pid, f[11], f[12])
	}
	return time.Duration(u+k) * clockTick, nil
}

// cpuProfile fetches a CPU profile of secs seconds from the portal's
// net/http/pprof handler (PADDOCK_PPROF, on the metrics address), and
// keeps a copy in file when file is not "" (for `go tool pprof`).
func cpuProfile(ctx context.Context, metricsBase string, secs int, file string) (*profile.Profile, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", metricsBase, secs), nil)
	if err != nil {
		return nil, err
	}
	resp, err := (&http.Client{Timeout: time.Duration(secs+30) * time.Second}).Do(req)
	if err != nil {
		return nil, fmt.Errorf("CPU profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("CPU profile: %s", resp.Status)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("CPU profile: %w", err)
	}
	if file != "" {
		if err := os.WriteFile(file, b, 0o644); err != nil {
			return nil, err
		}
	}
	p, err := profile.ParseData(b)
	if err != nil {
		return nil, fmt.Errorf("CPU profile: %w", err)
	}
	return p, nil
}

// parts name where the portal's CPU goes, in the order the table shows them.
var parts = []string{
	"database client (pgx)",
	"sessions (scs, with their queries)",
	"HTML rendering (templ)",
	"JSON",
	"portal code (handlers, views)",
	"HTTP and network I/O",
	"garbage collection",
	"Go runtime (scheduler, allocation)",
	"other",
}

// partOf names the part a sample's stack (leaf first) belongs to. Work
// done for the garbage collector, for a session or inside pgx counts
// there wherever it sits (a session's query is a session's cost, a query's
// socket read a query's); anything else goes by its innermost frame of a
// known part, so that a library call (strings, fmt) counts for its caller.
func partOf(stack []string, files []string) string {
	for _, fn := range stack {
		switch {
		case strings.HasPrefix(fn, "runtime.gcBgMarkWorker"), strings.HasPrefix(fn, "runtime.gcAssistAlloc"),
			strings.HasPrefix(fn, "runtime.bgsweep"), strings.HasPrefix(fn, "runtime.bgscavenge"):
			return "garbage collection"
		}
	}
	for _, fn := range stack {
		if !strings.HasPrefix(fn, "github.com/alexedwards/scs/") && !strings.Contains(fn, "(*touchStore)") && !strings.Contains(fn, "pageSessionStore)") {
			continue
		}
		// scs's middleware and response writer wrap every handler and
		// every write: the innermost scs frame says whether this is the
		// session's own work (loading, saving, its store) or not.
		if strings.Contains(fn, "LoadAndSave") || strings.Contains(fn, "(*sessionResponseWriter)") {
			break
		}
		return "sessions (scs, with their queries)"
	}
	for _, fn := range stack {
		if strings.HasPrefix(fn, "github.com/jackc/pgx/") || strings.HasPrefix(fn, "github.com/jackc/pgconn") {
			return "database client (pgx)"
		}
	}
	for i, fn := range stack {
		switch {
		case strings.HasPrefix(fn, "runtime.") || strings.HasPrefix(fn, "internal/runtime/") || strings.HasPrefix(fn, "sync/atomic."):
			continue
		case strings.HasPrefix(fn, "github.com/a-h/templ") || strings.HasSuffix(files[i], "_templ.go") || strings.HasPrefix(fn, "html/template."):
			return "HTML rendering (templ)"
		case strings.HasPrefix(fn, "encoding/json."):
			return "JSON"
		case strings.HasPrefix(fn, "paddock/"):
			return "portal code (handlers, views)"
		case strings.HasPrefix(fn, "net/http."), strings.HasPrefix(fn, "net."), strings.HasPrefix(fn, "internal/poll."),
			strings.HasPrefix(fn, "syscall."), strings.HasPrefix(fn, "bufio."), strings.HasPrefix(fn, "github.com/go-chi/"),
			strings.HasPrefix(fn, "internal/syscall/"):
			return "HTTP and network I/O"
		}
	}
	// No frame of a known part: the runtime's own work, or a library
	// this list does not name (Prometheus, slog) running by itself.
	for _, fn := range stack {
		if !strings.HasPrefix(fn, "runtime.") && !strings.HasPrefix(fn, "internal/runtime/") {
			return "other"
		}
	}
	return "Go runtime (scheduler, allocation)"
}

// shares splits a CPU profile's samples over parts, as fractions of all.
func shares(p *profile.Profile) map[string]float64 {
	cpu := len(p.SampleType) - 1 // "cpu" nanoseconds is the last value
	out := map[string]float64{}
	var total float64
	for _, s := range p.Sample {
		var stack, files []string
		for _, loc := range s.Location {
			for _, l := range loc.Line { // inlined frames first, as in the stack
				if l.Function != nil {
					stack = append(stack, l.Function.Name)
					files = append(files, l.Function.Filename)
				}
			}
		}
		v := float64(s.Value[cpu])
		out[partOf(stack, files)] += v
		total += v
	}
	if total > 0 {
		for k := range out {
			out[k] /= total
		}
	}
	return out
}

// where is one page's "where the time goes" row: CPU per request by
// process, and the portal's CPU by part.
type where struct {
	label    string
	requests int
	cpu      cpuTimes
	parts    map[string]float64
}

// perRequest is the CPU time of the portal, PostgreSQL and the load
// generator together per request.
func (w where) perRequest() time.Duration {
	return (w.cpu.portal + w.cpu.pgTotal() + w.cpu.generator) / time.Duration(max(1, w.requests))
}

func (w where) row() string {
	per := func(d time.Duration) string {
		return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)/float64(max(1, w.requests)))
	}
	var b strings.Builder
	fmt.Fprintf(&b, "| %s | %s | %s | %s |", w.label, per(w.cpu.portal), per(w.cpu.pgTotal()), per(w.cpu.generator))
	for _, p := range parts {
		fmt.Fprintf(&b, " %.0f%% |", 100*w.parts[p])
	}
	return b.String()
}

func whereHeader() string {
	var b strings.Builder
	b.WriteString("| Where the time goes | Portal CPU per request | PostgreSQL CPU per request | Load generator CPU per request |")
	for _, p := range parts {
		fmt.Fprintf(&b, " Portal: %s |", p)
	}
	b.WriteString("\n|---|---:|---:|---:|")
	for range parts {
		b.WriteString("---:|")
	}
	return b.String()
}
