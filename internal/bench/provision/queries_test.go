package main

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"paddock/internal/store"
)

// TestScrapeQueriesReadsThePortalsSeries serves a registry holding the
// portal's tracer, as /metrics does, and reads back what it timed.
func TestScrapeQueriesReadsThePortalsSeries(t *testing.T) {
	qm := store.NewQueryMetrics()
	reg := prometheus.NewRegistry()
	reg.MustRegister(qm)
	srv := httptest.NewServer(promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	defer srv.Close()
	ctx := context.Background()
	if _, err := scrapeQueries(ctx, srv.URL); err == nil || !strings.Contains(err.Error(), querySeries) {
		t.Fatalf("before any statement: err %v, want one naming %s", err, querySeries)
	}
	runStatement := func() {
		ctx := qm.TraceQueryStart(ctx, nil, pgx.TraceQueryStartData{SQL: "SELECT 1"})
		time.Sleep(2 * time.Millisecond)
		qm.TraceQueryEnd(ctx, nil, pgx.TraceQueryEndData{})
	}
	runStatement()
	before, err := scrapeQueries(ctx, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	runStatement()
	runStatement()
	after, err := scrapeQueries(ctx, srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	d := after.since(before)
	if len(d) != 1 {
		t.Fatalf("since: %v, want the one function that ran statements", d)
	}
	for fn, q := range d {
		if !strings.Contains(fn, "TestScrapeQueriesReadsThePortalsSeries") || q.n != 2 || q.sum < 0.004 {
			t.Fatalf("since: %s ran %d statements in %.4f s, want this test with 2 in at least 4 ms", fn, q.n, q.sum)
		}
	}
}

func TestPageQueriesSumsThePagesStatements(t *testing.T) {
	alone := queryRun{clients: 1, answers: 100, mean: 2 * time.Millisecond, q: queryTimes{
		"store.(*Store).RequestPage":    {n: 100, sum: 0.1},   // 1 ms each
		"web.(*pageSessionStore).Load":  {n: 200, sum: 0.02},  // 0.1 ms each, twice per answer
		"dbsqlc.(*Queries).JobGetAvail": {n: 2, sum: 0.001},   // a background poll
		"store.(*Store).TemplateStates": {n: 100, sum: 0.001}, // run alone but not under load
	}}
	loaded := queryRun{clients: 50, answers: 1000, mean: 20 * time.Millisecond, q: queryTimes{
		"store.(*Store).RequestPage":   {n: 1000, sum: 5}, // 5 ms each
		"web.(*pageSessionStore).Load": {n: 2000, sum: 2}, // 1 ms each
		"river.(*producer).poll":       {n: 3, sum: 0.01},
	}}
	rows, sentence := pageQueries("VM list", alone, loaded)
	want := []string{
		"| VM list | `store.(*Store).RequestPage` | 1.00 | 1.00 ms | 1.00 ms | 5.00 ms | 5.00 ms |",
		"| VM list | `web.(*pageSessionStore).Load` | 2.00 | 0.10 ms | 0.20 ms | 1.00 ms | 2.00 ms |",
	}
	if strings.Join(rows, "\n") != strings.Join(want, "\n") {
		t.Fatalf("rows:\n%s\nwant:\n%s", strings.Join(rows, "\n"), strings.Join(want, "\n"))
	}
	for _, part := range []string{"VM list: 3.00 statements per answer from 2 functions",
		"with 1 client(s) an answer took 2.00 ms on average, 1.20 ms of it (60%) waiting on them",
		"with 50 clients 20.00 ms, 7.00 ms of it (35%)", "(3 function(s) that ran less than once per 20 answers left out)"} {
		if !strings.Contains(sentence, part) {
			t.Errorf("sentence %q lacks %q", sentence, part)
		}
	}
}
