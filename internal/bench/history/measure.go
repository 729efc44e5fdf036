package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"paddock/internal/store"
	"paddock/internal/web"
)

// variant is one page measured: who asks for what, and the store filter it
// comes to (for its plan).
type variant struct {
	Name   string
	Who    string
	Path   string
	Filter *store.HistoryFilter
}

// measure runs the page variants, the export and the refreshes against a
// server with the real handler.
func measure(ctx context.Context, o options, pool *pgxpool.Pool, log *slog.Logger, rep *report) error {
	st := store.New(pool)
	srv := httptest.NewServer(web.New(web.Config{DevSignIn: true, ClusterName: "bench"}, st, nil, nil, slog.New(slog.DiscardHandler)).Handler())
	defer srv.Close()
	clients := map[string]*http.Client{}
	for _, who := range []string{"manager", "developer"} {
		c, err := signIn(srv.URL, who)
		if err != nil {
			return err
		}
		clients[who] = c
	}
	vs, err := variants(ctx, st, pool)
	if err != nil {
		return err
	}
	// Round-robin: one request of each page in turn, so that every page
	// sees the same mix of what else the machine is doing.
	lat, starts, err := sampleRoundRobin(ctx, clients, srv.URL, vs, o.samples)
	if err != nil {
		return err
	}
	if o.samplesCSV != "" {
		if err := writeSamples(o.samplesCSV, vs, lat, starts); err != nil {
			return err
		}
	}
	for i, v := range vs {
		r := result{Variant: v, Stats: summarise(lat[i])}
		if v.Filter != nil {
			if r.Plan, err = st.ExplainHistory(ctx, *v.Filter); err != nil {
				return err
			}
		}
		rep.Pages = append(rep.Pages, r)
		log.Info("measured", "page", v.Name, "p50", r.Stats.P50, "p99", r.Stats.P99)
	}

	// The whole history as CSV, and a small part of it, with memory
	// sampled while they stream.
	for _, ex := range []struct{ name, path string }{
		{"every request", "/history.csv"},
		{"one small team", "/history.csv?team=support-tools"},
	} {
		e, err := export(ctx, clients["manager"], srv.URL+ex.path)
		if err != nil {
			return fmt.Errorf("export %s: %w", ex.name, err)
		}
		e.Name = ex.name
		rep.Exports = append(rep.Exports, e)
		log.Info("exported", "what", ex.name, "rows", e.Rows, "took", e.Took, "peak_heap_mib", e.PeakHeap>>20)
	}

	// Refreshes as the periodic job runs them: nothing new, and 200
	// requests with new events.
	t := time.Now()
	if _, err := st.RefreshInsight(ctx, time.Now()); err != nil {
		return err
	}
	rep.IdleRefresh = time.Since(t)
	if _, err := pool.Exec(ctx, `INSERT INTO insight_dirty SELECT id FROM requests ORDER BY id DESC LIMIT 200`); err != nil {
		return err
	}
	t = time.Now()
	res, err := st.RefreshInsight(ctx, time.Now())
	if err != nil {
		return err
	}
	rep.BusyRefresh, rep.BusyRefreshWeeks = time.Since(t), res.Weeks
	return nil
}

func signIn(base, login string) (*http.Client, error) {
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.PostForm(base+"/dev/signin", url.Values{"login": {login}})
	if err != nil {
		return nil, err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		return nil, fmt.Errorf("sign in as %s: %d", login, resp.StatusCode)
	}
	return c, nil
}

// variants lists the pages measured, with values taken from the data: the
// smallest team, a request deep in the history, a name that occurs once.
func variants(ctx context.Context, st *store.Store, pool *pgxpool.Pool) ([]variant, error) {
	ids := map[string]int64{}
	for _, q := range []struct{ key, sql string }{
		{"support-tools", `SELECT id FROM teams WHERE name = 'support-tools'`},
		{"payments", `SELECT id FROM teams WHERE name = 'payments'`},
		{"broken-demo", `SELECT id FROM templates WHERE name = 'broken-demo'`},
		{"fedora", `SELECT id FROM templates WHERE name = 'fedora'`},
		{"ben.payments", `SELECT id FROM users WHERE login = 'ben.payments'`},
	} {
		var id int64
		if err := pool.QueryRow(ctx, q.sql).Scan(&id); err != nil {
			return nil, fmt.Errorf("benchmark data: %s: %w", q.key, err)
		}
		ids[q.key] = id
	}
	var deep store.Cursor
	if err := pool.QueryRow(ctx, `SELECT created_at, id FROM requests ORDER BY created_at DESC, id DESC OFFSET 500000 LIMIT 1`).
		Scan(&deep.CreatedAt, &deep.ID); err != nil {
		return nil, err
	}
	var once string
	if err := pool.QueryRow(ctx, `SELECT name FROM requests WHERE id = (SELECT max(id) / 3 FROM requests)`).Scan(&once); err != nil {
		return nil, err
	}
	var newest time.Time
	if err := pool.QueryRow(ctx, `SELECT max(created_at) FROM requests`).Scan(&newest); err != nil {
		return nil, err
	}
	yearAgo := newest.AddDate(-1, 0, 0).Truncate(24 * time.Hour)
	from, to := yearAgo.Format(time.DateOnly), yearAgo.AddDate(0, 0, 6).Format(time.DateOnly)
	fromT, toT := yearAgo, yearAgo.AddDate(0, 0, 7)
	team, pay, broken, fedora := ids["support-tools"], ids["payments"], ids["broken-demo"], ids["fedora"]
	var devTeam int64
	if err := pool.QueryRow(ctx, `SELECT team_id FROM users WHERE login = 'developer'`).Scan(&devTeam); err != nil {
		return nil, err
	}
	h := func(f store.HistoryFilter) *store.HistoryFilter { return &f }
	return []variant{
		{"baseline: /healthz (no session, no query)", "manager", "/healthz", nil},
		{"history: first page, no filter", "manager", "/history", h(store.HistoryFilter{})},
		{"history: page 10,001 (500,000 rows in)", "manager", "/history?after=" + deep.String(), h(store.HistoryFilter{After: &deep})},
		{"history: one team (2.6 %)", "manager", "/history?team=support-tools", h(store.HistoryFilter{TeamID: team})},
		{"history: largest team, 500,000 rows in", "manager", "/history?team=payments&after=" + deep.String(), h(store.HistoryFilter{TeamID: pay, After: &deep})},
		{"history: one requester", "manager", "/history?requester=ben.payments", h(store.HistoryFilter{RequesterID: ids["ben.payments"]})},
		{"history: one template (1.6 %)", "manager", "/history?template=broken-demo", h(store.HistoryFilter{TemplateID: broken})},
		{"history: rare state (stopped)", "manager", "/history?state=stopped", h(store.HistoryFilter{State: store.StateStopped})},
		{"history: common state (deleted)", "manager", "/history?state=deleted", h(store.HistoryFilter{State: store.StateDeleted})},
		{"history: one week a year ago", "manager", "/history?from=" + from + "&to=" + to, h(store.HistoryFilter{From: fromT, To: toT})},
		{"history: team + template + state", "manager", "/history?team=support-tools&template=broken-demo&state=failed",
			h(store.HistoryFilter{TeamID: team, TemplateID: broken, State: store.StateFailed})},
		{"history: template + state (few)", "manager", "/history?template=fedora&state=failed",
			h(store.HistoryFilter{TemplateID: fedora, State: store.StateFailed})},
		{"history: search, one request's name", "manager", "/history?q=" + url.QueryEscape(once), h(store.HistoryFilter{Q: once})},
		{"history: search, common words (7 %)", "manager", "/history?q=load+testing", h(store.HistoryFilter{Q: "load testing"})},
		{"history: search, 0.2 % of names", "manager", "/history?q=gpu-2", h(store.HistoryFilter{Q: "gpu-2"})},
		{"history: search + state", "manager", "/history?q=ledger&state=failed", h(store.HistoryFilter{Q: "ledger", State: store.StateFailed})},
		{"history: search + team + state", "manager", "/history?q=ledger&team=support-tools&state=running",
			h(store.HistoryFilter{Q: "ledger", TeamID: team, State: store.StateRunning})},
		{"history: search + one week", "manager", "/history?q=ledger&from=" + from + "&to=" + to,
			h(store.HistoryFilter{Q: "ledger", From: fromT, To: toT})},
		{"history: developer, own team", "developer", "/history", h(store.HistoryFilter{TeamID: devTeam})},
		{"history: developer, search", "developer", "/history?q=ledger", h(store.HistoryFilter{TeamID: devTeam, Q: "ledger"})},
		{"insight: all teams, 12 weeks", "manager", "/insight", nil},
		{"insight: all teams, 52 weeks", "manager", "/insight?weeks=52", nil},
		{"insight: one team, 26 weeks", "manager", "/insight?team=payments&weeks=26", nil},
		{"insight: one template, 4 weeks", "manager", "/insight?template=fedora&weeks=4", nil},
	}, nil
}

// sampleRoundRobin requests every variant n times, one request of each in
// turn, after a few rounds to warm up; it returns the latencies per variant
// and when each request started.
func sampleRoundRobin(ctx context.Context, clients map[string]*http.Client, base string, vs []variant, n int) ([][]time.Duration, [][]time.Time, error) {
	get := func(v variant) (time.Duration, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, base+v.Path, nil)
		t := time.Now()
		resp, err := clients[v.Who].Do(req)
		if err != nil {
			return 0, err
		}
		_, err = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		d := time.Since(t)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("%s: status %d", v.Name, resp.StatusCode)
		}
		return d, err
	}
	lat := make([][]time.Duration, len(vs))
	starts := make([][]time.Time, len(vs))
	for round := range n + 10 {
		for i, v := range vs {
			t := time.Now()
			d, err := get(v)
			if err != nil {
				return nil, nil, err
			}
			if round >= 10 {
				lat[i] = append(lat[i], d)
				starts[i] = append(starts[i], t)
			}
		}
	}
	return lat, starts, nil
}

// writeSamples writes every measured request as a CSV row.
func writeSamples(path string, vs []variant, lat [][]time.Duration, starts [][]time.Time) error {
	var t0 time.Time
	if len(starts) > 0 && len(starts[0]) > 0 {
		t0 = starts[0][0]
	}
	var b strings.Builder
	b.WriteString("round,page,start_ms,latency_ms\n")
	for i, v := range vs {
		for r, d := range lat[i] {
			fmt.Fprintf(&b, "%d,%q,%.3f,%.3f\n", r, v.Name, float64(starts[i][r].Sub(t0).Microseconds())/1000, float64(d.Microseconds())/1000)
		}
	}
	return os.WriteFile(path, []byte(b.String()), 0o644)
}

type stats struct {
	N                  int
	P50, P90, P99, Max time.Duration
}

func summarise(ds []time.Duration) stats {
	s := slices.Clone(ds)
	slices.Sort(s)
	at := func(p float64) time.Duration { return s[min(len(s)-1, int(p*float64(len(s))))] }
	return stats{N: len(s), P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: s[len(s)-1]}
}

type exportResult struct {
	Name                            string
	Rows, Bytes                     int64
	Took                            time.Duration
	HeapBefore, PeakHeap, HeapAfter uint64
	RSSBefore, PeakRSS, RSSAfter    uint64
}

// export downloads a CSV, counting rows, while a sampler records the
// process's heap in use and resident memory (the server runs in this
// process).
func export(ctx context.Context, c *http.Client, u string) (exportResult, error) {
	var e exportResult
	runtime.GC()
	e.HeapBefore, e.RSSBefore = heapInUse(), rss()
	e.PeakHeap, e.PeakRSS = e.HeapBefore, e.RSSBefore
	done := make(chan struct{})
	var wg sync.WaitGroup
	var mu sync.Mutex
	wg.Add(1)
	go func() {
		defer wg.Done()
		tk := time.NewTicker(10 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-done:
				return
			case <-tk.C:
				h, r := heapInUse(), rss()
				mu.Lock()
				e.PeakHeap, e.PeakRSS = max(e.PeakHeap, h), max(e.PeakRSS, r)
				mu.Unlock()
			}
		}
	}()
	t := time.Now()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	resp, err := c.Do(req)
	if err == nil {
		cw := &countWriter{}
		_, err = io.Copy(cw, resp.Body)
		resp.Body.Close()
		e.Rows, e.Bytes = cw.lines-1, cw.n
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("status %d", resp.StatusCode)
		}
	}
	e.Took = time.Since(t)
	close(done)
	wg.Wait()
	runtime.GC()
	e.HeapAfter, e.RSSAfter = heapInUse(), rss()
	return e, err
}

type countWriter struct{ n, lines int64 }

func (c *countWriter) Write(p []byte) (int, error) {
	c.n += int64(len(p))
	for _, b := range p {
		if b == '\n' {
			c.lines++
		}
	}
	return len(p), nil
}

func heapInUse() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapInuse
}

// rss reads the resident set size from /proc (0 where there is none).
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseUint(f[1], 10, 64)
			return kb << 10
		}
	}
	return 0
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}
