package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"paddock/internal/bench/stamp"
)

type result struct {
	Variant variant
	Stats   stats
	Plan    []string
}

// report is what the benchmark found; write puts it in BENCHMARKS.md.
type report struct {
	N, Samples              int
	LoadBefore, LoadAfter   string
	CPU, Memory, Postgres   string
	Cores                   int
	Requests, Events        int64
	Seeded                  int
	SeedTook                time.Duration
	SeedLoad                string
	SeedAt                  time.Time
	FullRefresh             time.Duration
	FullRefreshN            int64
	IdleRefresh             time.Duration
	BusyRefresh             time.Duration
	BusyRefreshWeeks        int64
	Pages                   []result
	Exports                 []exportResult
	RequestsSize, EventSize string
}

func (r *report) machine(ctx context.Context, pool *pgxpool.Pool) error {
	r.Cores = runtime.NumCPU()
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				r.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		if f := strings.Fields(strings.SplitN(string(b), "\n", 2)[0]); len(f) >= 2 {
			r.Memory = f[1] + " kB"
		}
	}
	if r.Seeded == 0 {
		var secs, refresh float64
		var n int64
		err := pool.QueryRow(ctx, `SELECT at, requests, seed_seconds, refresh_seconds, load FROM bench_history_seed
			ORDER BY at DESC LIMIT 1`).Scan(&r.SeedAt, &n, &secs, &refresh, &r.SeedLoad)
		if err == nil {
			r.SeedTook, r.FullRefresh, r.FullRefreshN = time.Duration(secs*float64(time.Second)), time.Duration(refresh*float64(time.Second)), n
		}
	}
	return pool.QueryRow(ctx, `SELECT split_part(version(), ' on ', 1), (SELECT count(*) FROM requests), (SELECT count(*) FROM events),
		pg_size_pretty(pg_total_relation_size('requests')), pg_size_pretty(pg_total_relation_size('events'))`).
		Scan(&r.Postgres, &r.Requests, &r.Events, &r.RequestsSize, &r.EventSize)
}

const (
	sectionStart = "<!-- history-bench:start (written by `make bench-history`; edits inside are overwritten) -->"
	sectionEnd   = "<!-- history-bench:end -->"
)

// write replaces this benchmark's section of the file, leaving the rest.
func (r *report) write(path string) error {
	var b bytes.Buffer
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...) }
	ms := func(d time.Duration) string { return fmt.Sprintf("%.1f", float64(d.Microseconds())/1000) }
	mib := func(n uint64) string { return fmt.Sprintf("%.1f", float64(n)/(1<<20)) }
	p("%s\n## History and insight at %s requests (issue #7)\n\n", sectionStart, thousands(int64(r.N)))
	p("Measured %s on %s by `make bench-history` (`go run ./internal/bench/history`).\n\n", time.Now().UTC().Format("2006-01-02 15:04 UTC"), stamp.Commit())
	p("**Machine.** %d cores (%s), %s of memory; %s on the same machine, default settings (shared_buffers 128 MB).\n", r.Cores, r.CPU, r.Memory, r.Postgres)
	p("The machine is shared with other engineers' builds and tests: load average %s before the run, %s after. ", r.LoadBefore, r.LoadAfter)
	p("The tails depend on that; the baseline row (`/healthz`) shows how quiet the machine was.\n\n")
	p("**Data.** The dedicated database `paddock_bench`: %s requests (%s with indexes) and %s events (%s), made by `seed.History` ", thousands(r.Requests), r.RequestsSize, thousands(r.Events), r.EventSize)
	p("(the code behind `portal dev --seed-history N`): two years, 20 teams, 5 templates, auto- and person-approved, failed, stopped and started, extended, expired and deleted requests with their events.\n")
	switch {
	case r.Seeded > 0:
		p("Seeding %s requests took %s (two connections copying; load average %s at the end); the first insight refresh (all %s requests at once) took %s.\n",
			thousands(int64(r.Seeded)), r.SeedTook.Round(time.Second), r.SeedLoad, thousands(r.FullRefreshN), r.FullRefresh.Round(time.Second))
	case r.FullRefreshN > 0:
		p("The database was seeded by an earlier run (%s) and reused: seeding %s requests took %s (load average %s at the end); the first insight refresh took %s.\n",
			r.SeedAt.UTC().Format("2006-01-02 15:04 UTC"), thousands(r.FullRefreshN), r.SeedTook.Round(time.Second), r.SeedLoad, r.FullRefresh.Round(time.Second))
	default:
		p("The database was seeded by an earlier run and reused.\n")
	}
	p("\n**Method.** An in-process `httptest` server with the real handler (`web.New(...).Handler()`: routing, session and user lookup, query, templ rendering), ")
	p("signed in through the dev sign-in; every page is requested in turn, one request at a time, for 10 rounds to warm up and then %d measured rounds ", r.Samples)
	p("(round-robin, so that every page sees the same mix of what else the machine is doing); latency is from sending the request to reading the last byte. ")
	p("The last column is the history query's own plan and execution time, from EXPLAIN ANALYZE after the run.\n\n")
	p("| Page | p50 ms | p90 ms | p99 ms | max ms | Plan of the history query |\n|---|---:|---:|---:|---:|---|\n")
	for _, x := range r.Pages {
		p("| %s | %s | %s | %s | %s | %s |\n", x.Variant.Name, ms(x.Stats.P50), ms(x.Stats.P90), ms(x.Stats.P99), ms(x.Stats.Max), planSummary(x.Plan))
	}
	p("\n**CSV export** (streamed from a server-side cursor, 1,000 rows a fetch, flushed every 500 rows). Memory is of the whole process, server and client, sampled every 10 ms:\n\n")
	p("| Export | rows | MB | seconds | heap in use before / peak / after (MiB) | RSS before / peak / after (MiB) |\n|---|---:|---:|---:|---|---|\n")
	for _, e := range r.Exports {
		p("| %s | %s | %.1f | %.1f | %s / %s / %s | %s / %s / %s |\n", e.Name, thousands(e.Rows), float64(e.Bytes)/1e6, e.Took.Seconds(),
			mib(e.HeapBefore), mib(e.PeakHeap), mib(e.HeapAfter), mib(e.RSSBefore), mib(e.PeakRSS), mib(e.RSSAfter))
	}
	if len(r.Exports) >= 2 {
		// How the peak heap above its level before the export grew against
		// the number of rows, from the smallest export to the largest.
		small, large := r.Exports[0], r.Exports[0]
		for _, e := range r.Exports {
			if e.Rows < small.Rows {
				small = e
			}
			if e.Rows > large.Rows {
				large = e
			}
		}
		above := func(e exportResult) uint64 { return e.PeakHeap - min(e.PeakHeap, e.HeapBefore) }
		if small.Rows > 0 && above(small) > 0 {
			p("\nFrom the smallest export (%s rows) to the largest (%s rows, %.0f× as many), the heap's peak above its level before the export went from %s to %s MiB (%.2f×).\n\n",
				thousands(small.Rows), thousands(large.Rows), float64(large.Rows)/float64(small.Rows),
				mib(above(small)), mib(above(large)), float64(above(large))/float64(above(small)))
		} else {
			p("\n")
		}
	} else {
		p("\n")
	}
	p("**Insight refresh** (the River periodic job, every 5 minutes): with nothing new %s ms (this week recomputed); ", ms(r.IdleRefresh))
	p("with 200 requests with new events %s ms (%d week(s) recomputed, then the exact 4/12/26/52-week percentiles over every request of the last year). ", ms(r.BusyRefresh), r.BusyRefreshWeeks)
	p("Insight pages read the summary only.\n\n")
	p("<details><summary>EXPLAIN ANALYZE of each history query</summary>\n\n")
	for _, x := range r.Pages {
		if len(x.Plan) == 0 {
			continue
		}
		p("%s\n\n```\n%s\n```\n\n", x.Variant.Name, strings.Join(x.Plan, "\n"))
	}
	p("</details>\n%s\n", sectionEnd)

	old, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		return err
	}
	text := string(old)
	if text == "" {
		text = "# Benchmarks\n\n"
	}
	i, j := strings.Index(text, sectionStart), strings.Index(text, sectionEnd)
	if i >= 0 && j > i {
		text = text[:i] + b.String() + text[j+len(sectionEnd)+1:]
	} else {
		if !strings.HasSuffix(text, "\n\n") {
			text += "\n"
		}
		text += b.String()
	}
	return os.WriteFile(path, []byte(text), 0o644)
}

// planSummary names the scans that find the page's rows (the inner query),
// then, after "count:", those of the capped count (the InitPlan whose top
// node is an Aggregate), and the execution time of the whole statement.
func planSummary(plan []string) string {
	if len(plan) == 0 {
		return "—"
	}
	var rows, count []string
	exec := ""
	block := &rows
	initIndent := -1 // the indentation of the InitPlan being read, if any
	for _, l := range plan {
		indent := len(l) - len(strings.TrimLeft(l, " "))
		t := strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(l), "->"))
		if initIndent >= 0 && indent <= initIndent {
			initIndent, block = -1, &rows
		}
		switch {
		case strings.HasPrefix(t, "InitPlan"):
			initIndent, block = indent, nil
			continue
		case block == nil:
			block = &rows
			if strings.HasPrefix(t, "Aggregate") {
				block = &count
			}
		}
		switch m := innerScan.FindStringSubmatch(t); {
		case m != nil:
			*block = append(*block, strings.ReplaceAll(m[1], "using ", ""))
		case strings.HasPrefix(t, "Bitmap Index Scan"):
			name, _, _ := strings.Cut(t, " (actual")
			*block = append(*block, name)
		case strings.HasPrefix(t, "Execution Time:"):
			exec = strings.TrimSpace(strings.TrimPrefix(t, "Execution Time:"))
		}
	}
	out := strings.Join(rows, "; ")
	if len(count) > 0 {
		out += "; count: " + strings.Join(count, "; ")
	}
	return out + " — " + exec
}

// innerScan is a scan of requests under an alias of its own (r_1, r_2):
// the inner query's or the count's, not the outer query's (r).
var innerScan = regexp.MustCompile(`^(.*?) on requests r_[0-9]+\b`)

func thousands(n int64) string {
	s := fmt.Sprint(n)
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	return b.String()
}
