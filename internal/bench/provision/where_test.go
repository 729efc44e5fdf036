package main

import (
	"strings"
	"testing"
	"time"
)

// TestPartOf: a sample's stack (leaf first) goes to the part whose work
// it is, not to the middleware every handler runs under.
func TestPartOf(t *testing.T) {
	handler := []string{
		"github.com/alexedwards/scs/v2.(*SessionManager).LoadAndSave.func1",
		"paddock/internal/web.(*Server).logRequests.func1",
		"net/http.serverHandler.ServeHTTP",
		"net/http.(*conn).serve",
	}
	stack := func(inner ...string) []string { return append(inner, handler...) }
	for _, c := range []struct {
		name  string
		stack []string
		file  string // of the leaf frame
		want  string
	}{
		{"query from a handler", stack("syscall.Syscall", "net.(*conn).Write", "github.com/jackc/pgx/v5/pgconn.(*PgConn).ExecStatement",
			"paddock/internal/store.(*Store).RequestPage", "paddock/internal/web.(*Server).requestList"), "", "database client (pgx)"},
		{"session load", stack("github.com/jackc/pgx/v5.(*Conn).QueryRow", "github.com/alexedwards/scs/pgxstore.(*PostgresStore).Find",
			"github.com/alexedwards/scs/v2.(*SessionManager).Load"), "", "sessions (scs, with their queries)"},
		{"session save on the first write", stack("paddock/internal/web.(*touchStore).Commit", "github.com/alexedwards/scs/v2.(*SessionManager).Commit",
			"github.com/alexedwards/scs/v2.(*sessionResponseWriter).WriteHeader", "paddock/internal/web.render"), "", "sessions (scs, with their queries)"},
		{"response write through scs's writer", stack("syscall.Syscall", "net/http.(*response).Write",
			"github.com/alexedwards/scs/v2.(*sessionResponseWriter).Write", "github.com/a-h/templ.ComponentFunc.Render"), "", "HTTP and network I/O"},
		{"rendering", stack("runtime.mallocgc", "strings.(*Builder).WriteString", "paddock/internal/web.requestsPage.func1"),
			"", "HTML rendering (templ)"},
		{"handler code calling the standard library", stack("strings.ToLower", "paddock/internal/web.matches", "paddock/internal/web.(*Server).catalog"),
			"", "portal code (handlers, views)"},
		{"GC assist", stack("runtime.gcAssistAlloc", "runtime.mallocgc", "paddock/internal/web.cardOf"), "", "garbage collection"},
		{"background mark worker", []string{"runtime.scanobject", "runtime.gcBgMarkWorker"}, "", "garbage collection"},
		{"scheduler", []string{"runtime.findRunnable", "runtime.schedule"}, "", "Go runtime (scheduler, allocation)"},
		{"a library on its own", []string{"github.com/prometheus/client_golang/prometheus.(*Registry).Gather"}, "", "other"},
	} {
		files := make([]string, len(c.stack))
		files[0] = c.file
		for i, fn := range c.stack {
			if fn == "paddock/internal/web.requestsPage.func1" {
				files[i] = "internal/web/request_show_templ.go"
			}
		}
		if got := partOf(c.stack, files); got != c.want {
			t.Errorf("%s: %q, want %q", c.name, got, c.want)
		}
	}
}

// TestClosedLoop: the rate a page needs follows from the clients and the
// /healthz p99; each page is told what share of that rate it reached and
// how long its tail is.
func TestClosedLoop(t *testing.T) {
	m := time.Millisecond
	got := closedLoop(10*m, 2, []loopRow{
		{label: "Fast", rate: 2500, cpu: 400 * time.Microsecond, s: stats{mean: 20 * m, p99: 60 * m}},
		{label: "Slow", rate: 625, cpu: 2 * m, s: stats{mean: 80 * m, p99: 120 * m}},
	})
	for _, want := range []string{
		"a p99 within 4× the `/healthz` p99 (40.00 ms)",
		"at least 1250 answers/s",
		"Fast 2500/s, 200% of that (mean 20.00 ms, p99 3.0× its mean)",
		"Slow 625/s, 50% of that (mean 80.00 ms, p99 1.5× its mean)",
		"share the machine's 2 CPUs",
		// 2 CPUs ÷ 0.4 ms = 5000/s; 1250/s × a tail of 3 = 3750/s needs 2 s ÷ 3750 of CPU.
		"Fast 0.40 ms per answer, at most 5000/s, reached 50% of that; with its tail the goal needs 3750/s, so at most 0.53 ms per answer",
		// 2 CPUs ÷ 2 ms = 1000/s; 1250/s × 1.5 = 1875/s.
		"Slow 2.00 ms per answer, at most 1000/s, reached 62% of that; with its tail the goal needs 1875/s, so at most 1.07 ms per answer",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("closedLoop() = %q\nwant it to contain %q", got, want)
		}
	}
	if strings.Contains(closedLoop(10*m, 2, []loopRow{{label: "x", rate: 1, s: stats{mean: m, p99: m}}}), "CPU:") {
		t.Error("closedLoop without CPU figures should not speak of CPU")
	}
	if closedLoop(0, 2, []loopRow{{label: "x", rate: 1}}) != "" {
		t.Error("closedLoop without a /healthz p99 should say nothing")
	}
}
