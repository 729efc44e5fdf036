package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"paddock/internal/testdb"
)

// TestServeMetricsOnTheirOwnAddress: with PADDOCK_METRICS_ADDR, `portal
// serve` serves /metrics there and the main address answers 404 for it.
// Go's profiler is served only with PADDOCK_PPROF, and only there.
func TestServeMetricsOnTheirOwnAddress(t *testing.T) {
	t.Parallel()
	for _, pprof := range []bool{false, true} {
		t.Run(fmt.Sprintf("pprof=%t", pprof), func(t *testing.T) {
			t.Parallel()
			serveMetricsApart(t, pprof)
		})
	}
}

func serveMetricsApart(t *testing.T, pprof bool) {
	logs := &lockedLog{}
	env := envMap(map[string]string{"DATABASE_URL": testdb.NewURL(t), "PADDOCK_CLUSTER": "simulated",
		"PADDOCK_METRICS_ADDR": "127.0.0.1:0", "PADDOCK_LOG_FORMAT": "text", "PADDOCK_WORKERS": "1",
		"PADDOCK_PPROF": strconv.FormatBool(pprof)})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, []string{"serve", "--addr", "127.0.0.1:0"}, env, io.Discard, logs) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	addrOf := regexp.MustCompile(`msg="?([a-z ]+)"? addr=(\S+)`)
	addrs := map[string]string{}
	for deadline := time.Now().Add(30 * time.Second); len(addrs) < 2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("serve did not report both addresses:\n%s", logs.String())
		}
		select {
		case err := <-done:
			t.Fatalf("serve ended: %v\n%s", err, logs.String())
		default:
		}
		for _, m := range addrOf.FindAllStringSubmatch(logs.String(), -1) {
			addrs[m[1]] = m[2]
		}
	}
	get := func(addr, path string) (int, string) {
		t.Helper()
		resp, err := http.Get("http://" + addr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, _ := get(addrs["listening"], "/healthz"); code != 200 {
		t.Errorf("main /healthz: %d", code)
	}
	if code, b := get(addrs["listening"], "/metrics"); code != 404 || strings.Contains(b, "paddock_http_request_duration_seconds") {
		t.Errorf("main /metrics: %d", code)
	}
	if code, b := get(addrs["serving metrics"], "/metrics"); code != 200 ||
		!strings.Contains(b, `paddock_http_request_duration_seconds_count{code="200",method="GET",route="/healthz"}`) {
		t.Errorf("metrics /metrics: %d\n%s", code, b)
	}
	// The statements serve runs (migrations, the catalog's examples, the
	// job queue's) are timed by the function that ran them: a store method,
	// or River's query, never River's pgx driver they pass through.
	for _, want := range []string{`store\.\(\*Store\)\.[A-Za-z]+`, `dbsqlc\.\(\*Queries\)\.[A-Za-z]+`} {
		series := regexp.MustCompile(`(?m)^paddock_db_query_duration_seconds_count\{query="` + want + `"\} [1-9]`)
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			_, b := get(addrs["serving metrics"], "/metrics")
			if series.MatchString(b) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("metrics /metrics: no statement timed under %s\n%s", want, b)
			}
		}
	}
	if _, b := get(addrs["serving metrics"], "/metrics"); strings.Contains(b, `query="riverpgxv5.`) || strings.Contains(b, `query="pgx`) {
		t.Errorf("metrics /metrics: statements timed under a driver they pass through\n%s", b)
	}
	if code, _ := get(addrs["listening"], "/debug/pprof/"); code != 404 {
		t.Errorf("main /debug/pprof/: %d, want 404", code)
	}
	code, b := get(addrs["serving metrics"], "/debug/pprof/")
	if pprof && (code != 200 || !strings.Contains(b, "goroutine")) {
		t.Errorf("metrics /debug/pprof/ with PADDOCK_PPROF: %d\n%s", code, b)
	}
	if !pprof && code != 404 {
		t.Errorf("metrics /debug/pprof/ without PADDOCK_PPROF: %d, want 404", code)
	}
}

// TestProfilerNeedsAMetricsAddress: PADDOCK_PPROF alone is refused, as
// the profiler would otherwise have nowhere to go but the main address.
func TestProfilerNeedsAMetricsAddress(t *testing.T) {
	t.Parallel()
	env := envMap(map[string]string{"DATABASE_URL": "postgres://127.0.0.1:1/none", "PADDOCK_CLUSTER": "simulated", "PADDOCK_PPROF": "true"})
	err := run(context.Background(), []string{"serve"}, env, io.Discard, io.Discard)
	if err == nil || !strings.Contains(err.Error(), "PADDOCK_METRICS_ADDR") {
		t.Fatalf("serve with PADDOCK_PPROF and no metrics address: %v", err)
	}
}

// lockedLog collects what a server running in the test process logs.
type lockedLog struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
