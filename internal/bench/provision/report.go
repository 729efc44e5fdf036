package main

import (
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"paddock/internal/bench/stamp"
)

// report collects the figures and prints them as Markdown.
type report struct {
	machine   string
	loadAfter string
	latency   []latencyRow
	rate      []string // Markdown table rows, already formatted
	memory    []string
	front     []frontDoorRow
	pages     []string
	// pagesVerdict says how many pages meet the goal (pageGoal).
	pagesVerdict string
	// pagesLoop splits each page's p99 into what the closed loop's rate
	// sets (its mean) and its tail (closedLoop).
	pagesLoop string
	// pagesQuiet says how long the program waited for a quiet machine
	// before each route and how busy the CPUs were during it.
	pagesQuiet string
	where      []string
	// queries are the per-statement table's rows (pageQueries), and
	// queriesSaid one sentence per page summing them.
	queries     []string
	queriesSaid []string
	notes       []string
}

// latencyRow is one line of the submit table: Paddock against its baseline
// at the same concurrency.
type latencyRow struct {
	concurrency   int
	paddock, base stats
}

// stats summarises latency samples.
type stats struct {
	n        int
	p50, p99 time.Duration
	max      time.Duration
	mean     time.Duration
}

func summarise(samples []time.Duration) stats {
	if len(samples) == 0 {
		return stats{}
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	q := func(p float64) time.Duration {
		i := int(p*float64(len(s))+0.5) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	return stats{n: len(s), p50: q(0.50), p99: q(0.99), max: s[len(s)-1], mean: sum / time.Duration(len(s))}
}

// failed notes an item that could not be finished; the others still run.
func (r *report) failed(item string, err error, log *slog.Logger) {
	if err == nil {
		return
	}
	log.Error("item not finished", "item", item, "err", err)
	msg := err.Error()
	if len(msg) > 300 {
		msg = msg[:300] + "…"
	}
	r.notes = append(r.notes, fmt.Sprintf("Not measured: %s failed in this run: %s", item, strings.ReplaceAll(msg, "\n", " ")))
}

func (r *report) write(w io.Writer) {
	fmt.Fprintf(w, "Measured on %s, %s.\n\n", stamp.Commit(), time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(w, "Machine: %s; load average at the end %s.\n\n", r.machine, r.loadAfter)
	if len(r.latency) > 0 {
		fmt.Fprintln(w, "| Submit → VM exists (auto-approved) | Submitters | Samples | p50 | p99 | max | Baseline p50 | Baseline p99 | p50 ÷ baseline p50 |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|---:|")
		for _, l := range r.latency {
			ratio := float64(l.paddock.p50) / float64(l.base.p50)
			fmt.Fprintf(w, "| Paddock vs. bare INSERT tx + bare VM create | %d | %d / %d | %s | %s | %s | %s | %s | %.2f× |\n",
				l.concurrency, l.paddock.n, l.base.n, ms(l.paddock.p50), ms(l.paddock.p99), ms(l.paddock.max),
				ms(l.base.p50), ms(l.base.p99), ratio)
		}
		fmt.Fprintln(w)
	}
	table(w, "| Sustained submits | Requests | Seconds | Per second | Lost VMs | Duplicated VMs | Baseline: pgbench one-INSERT transactions/s |",
		"|---|---:|---:|---:|---:|---:|---:|", r.rate)
	if len(r.front) > 0 {
		fmt.Fprintln(w, "| VMs created through | VMs | Concurrency | Seconds | VMs per second | p50 | p99 | max |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---:|")
		for _, f := range r.front {
			fmt.Fprintf(w, "| %s | %d | %d | %.2f | %.1f | %s | %s | %s |\n", f.path, f.n, f.conc, f.elapsed.Seconds(),
				float64(f.n)/f.elapsed.Seconds(), ms(f.lat.p50), ms(f.lat.p99), ms(f.lat.max))
		}
		fmt.Fprintln(w)
	}
	if len(r.pages) > 0 {
		table(w, fmt.Sprintf("| Page under %d concurrent clients | Path | Requests | Per second | Answer | p50 | p99 | /healthz p50 | /healthz p99 | p99 ÷ /healthz p99 | Goal ≤ %d× |", pageClients, pageGoal),
			"|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|", r.pages)
		if r.pagesVerdict != "" {
			fmt.Fprintln(w, r.pagesVerdict)
			fmt.Fprintln(w)
		}
		if r.pagesLoop != "" {
			fmt.Fprintln(w, r.pagesLoop)
			fmt.Fprintln(w)
		}
		if r.pagesQuiet != "" {
			fmt.Fprintln(w, r.pagesQuiet)
			fmt.Fprintln(w)
		}
		table(w, whereHeader(), "", r.where)
		table(w, fmt.Sprintf("| Statements of each page, by the function that ran them | Function | Per answer | Mean, 1 client | Per answer × mean, 1 client | Mean, %d clients | Per answer × mean, %d clients |", pageClients, pageClients),
			"|---|---|---:|---:|---:|---:|---:|", r.queries)
		if len(r.queriesSaid) > 0 {
			fmt.Fprintln(w, "Statements: "+strings.Join(r.queriesSaid, "; ")+".")
			fmt.Fprintln(w)
		}
	}
	table(w, "| `portal serve` resident set | VMs | VMIs | Informers synced after | VmRSS at ready | VmRSS settled | VmHWM |",
		"|---|---:|---:|---:|---:|---:|---:|", r.memory)
	for _, n := range r.notes {
		fmt.Fprintf(w, "- %s\n", n)
	}
}

// table writes a Markdown table of rows, already formatted, under its
// header and alignment lines (align empty when header holds both), and a
// blank line; nothing when there are no rows.
func table(w io.Writer, header, align string, rows []string) {
	if len(rows) == 0 {
		return
	}
	fmt.Fprintln(w, header)
	if align != "" {
		fmt.Fprintln(w, align)
	}
	for _, row := range rows {
		fmt.Fprintln(w, row)
	}
	fmt.Fprintln(w)
}
