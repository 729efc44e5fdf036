package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"paddock/internal/bench/stamp"
	"paddock/internal/testdb"
)

// TestLoad drives `portal dev` on the simulated cluster with many concurrent
// API clients (100 for 60 s unless PADDOCK_LOAD_CLIENTS and
// PADDOCK_LOAD_DURATION say otherwise), each creating, reading, listing and
// deleting VMs, then checks that no answer was a 5xx and that nothing was
// lost or duplicated: every accepted create is stored exactly once and
// reaches its final state (running, or deleted when the client deleted it),
// and the simulated cluster holds exactly the VMs of the running requests.
// It is too heavy for every `go test`: `make load` runs it
// (PADDOCK_LOAD_TEST=1). Loopback only.
func TestLoad(t *testing.T) {
	if os.Getenv("PADDOCK_LOAD_TEST") != "1" {
		t.Skip("set PADDOCK_LOAD_TEST=1 (make load) to run the load test")
	}
	clients := loadEnvInt(t, "PADDOCK_LOAD_CLIENTS", 100)
	duration := 60 * time.Second
	if d := os.Getenv("PADDOCK_LOAD_DURATION"); d != "" {
		var err error
		if duration, err = time.ParseDuration(d); err != nil {
			t.Fatalf("PADDOCK_LOAD_DURATION: %v", err)
		}
	}
	dbURL := testdb.NewURL(t)
	ctx := context.Background()
	p := startPortal(t, dbURL, "PADDOCK_SIM_DELAY=50ms", "PADDOCK_API_RATE=10000000", "PADDOCK_LOG_FORMAT=text")
	tok := token(t, dbURL, "developer")
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	// Hundreds of VMs: lift the demo team's quota.
	if _, err := conn.Exec(ctx, `DELETE FROM team_quotas`); err != nil {
		t.Fatal(err)
	}

	hc := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		MaxIdleConns: clients * 2, MaxIdleConnsPerHost: clients * 2, IdleConnTimeout: time.Minute,
	}}
	st := &loadStats{lat: map[string][]time.Duration{}, status: map[string]map[int]int{}}
	do := func(kind, method, path, key, body string) (int, []byte) {
		req, _ := http.NewRequest(method, p.base+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+tok)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		start := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			st.record(kind, 0, time.Since(start), err.Error())
			return 0, nil
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		st.record(kind, resp.StatusCode, time.Since(start), "")
		return resp.StatusCode, b
	}

	var (
		mu       sync.Mutex
		accepted = map[string]int64{} // idempotency key → request id
		deleted  = map[int64]bool{}
		problems []string
	)
	problem := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		if len(problems) < 20 {
			problems = append(problems, fmt.Sprintf(format, args...))
		}
	}
	end := time.Now().Add(duration)
	start := time.Now()
	var wg sync.WaitGroup
	for c := range clients {
		wg.Go(func() {
			var prev int64
			for i := 0; time.Now().Before(end); i++ {
				key := fmt.Sprintf("l%d-%d", c, i)
				body := fmt.Sprintf(`{"template":"cirros","size":"nano","name":"vm-%s","sshPublicKey":%q,"leaseDays":1}`, key, sshKey)
				status, b := do("create", "POST", "/api/v1/requests", key, body)
				if status != http.StatusCreated {
					problem("create %s: %d %s", key, status, b)
					continue
				}
				var r apiReq
				if err := json.Unmarshal(b, &r); err != nil || r.ID == 0 {
					problem("create %s: answer %s", key, b)
					continue
				}
				mu.Lock()
				accepted[key] = r.ID
				mu.Unlock()
				if status, b := do("read", "GET", fmt.Sprintf("/api/v1/requests/%d", r.ID), "", ""); status != http.StatusOK {
					problem("read %d: %d %s", r.ID, status, b)
				}
				if status, b := do("list", "GET", "/api/v1/requests?limit=20", "", ""); status != http.StatusOK {
					problem("list: %d %s", status, b)
				}
				// Delete every other VM, so that half are left running.
				if i%2 == 1 && prev != 0 {
					if status, b := do("delete", "DELETE", fmt.Sprintf("/api/v1/requests/%d", prev), "", ""); status == http.StatusAccepted {
						mu.Lock()
						deleted[prev] = true
						mu.Unlock()
					} else {
						problem("delete %d: %d %s", prev, status, b)
					}
				}
				prev = r.ID
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)

	// Every accepted request reaches its final state.
	settle := time.Now().Add(5 * time.Minute)
	var open int
	for {
		err := conn.QueryRow(ctx, `SELECT count(*) FROM requests WHERE NOT (state = 'running' AND desired = 'running' OR state = 'deleted')`).Scan(&open)
		if err != nil {
			t.Fatal(err)
		}
		if open == 0 || time.Now().After(settle) {
			break
		}
		time.Sleep(time.Second)
	}
	settled := time.Since(start) - elapsed

	table := st.report(t, elapsed)
	t.Logf("%d creates accepted, %d deleted; all settled %s after the load stopped", len(accepted), len(deleted), settled.Round(time.Second))
	if st.fivexx > 0 || st.transport > 0 {
		t.Errorf("%d 5xx answers, %d transport errors", st.fivexx, st.transport)
	}
	if len(problems) > 0 {
		t.Errorf("%d+ problems, first: %s", len(problems), strings.Join(problems[:min(5, len(problems))], "\n"))
	}
	if open != 0 {
		t.Errorf("%d requests not in a final state 5 minutes after the load", open)
	}

	// Nothing lost, nothing duplicated.
	type row struct {
		ID          int64
		Name, State string
	}
	rows, _ := conn.Query(ctx, `SELECT id, name, state FROM requests`)
	stored, err := pgx.CollectRows(rows, pgx.RowToStructByPos[row])
	if err != nil {
		t.Fatal(err)
	}
	byID := map[int64]row{}
	names := map[string]int{}
	running := 0
	for _, r := range stored {
		byID[r.ID] = r
		names[r.Name]++
		if r.State == "running" {
			running++
		}
	}
	ids := map[int64]string{}
	lost, dup, wrong := 0, 0, 0
	for key, id := range accepted {
		if other, ok := ids[id]; ok {
			problem("request %d answered for %s and %s", id, key, other)
			dup++
		}
		ids[id] = key
		r, ok := byID[id]
		switch {
		case !ok:
			lost++
		case names[r.Name] != 1:
			dup++
		case deleted[id] && r.State != "deleted", !deleted[id] && r.State != "running":
			wrong++
			problem("request %d (%s) is %s", id, key, r.State)
		}
	}
	extra := len(stored) - len(accepted)
	var simVMs int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM sim_objects WHERE kind = 'VirtualMachine'`).Scan(&simVMs); err != nil {
		t.Fatal(err)
	}
	accounting := fmt.Sprintf("Stored %d requests for %d accepted creates (%d of them deleted): %d lost, %d duplicated, %d unaccounted for, %d in the wrong final state; %d running, %d VMs in the simulated cluster; all settled %s after the load stopped.",
		len(stored), len(accepted), len(deleted), lost, dup, extra, wrong, running, simVMs, settled.Round(time.Second))
	t.Log(accounting)
	if out := os.Getenv("PADDOCK_LOAD_OUT"); out != "" {
		defer func() { writeLoadSection(t, out, clients, elapsed, table, accounting) }()
	}
	if lost != 0 || dup != 0 || extra != 0 || wrong != 0 {
		t.Errorf("lost %d, duplicated %d, unaccounted for %d, wrong final state %d", lost, dup, extra, wrong)
	}
	if simVMs != running {
		t.Errorf("%d VirtualMachines in the simulated cluster for %d running requests", simVMs, running)
	}
	if len(accepted) < clients {
		t.Errorf("only %d creates accepted", len(accepted))
	}
}

func loadEnvInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive number", name, v)
	}
	return n
}

// loadStats collects latencies and statuses by kind of call.
type loadStats struct {
	mu        sync.Mutex
	lat       map[string][]time.Duration
	status    map[string]map[int]int
	fivexx    int
	transport int
}

func (s *loadStats) record(kind string, status int, d time.Duration, transportErr string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lat[kind] = append(s.lat[kind], d)
	if s.status[kind] == nil {
		s.status[kind] = map[int]int{}
	}
	s.status[kind][status]++
	switch {
	case transportErr != "":
		s.transport++
	case status >= 500:
		s.fivexx++
	}
}

// report logs each kind of call's figures and returns them as the rows
// of a Markdown table.
func (s *loadStats) report(t *testing.T, elapsed time.Duration) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var rows []string
	total := 0
	for _, kind := range []string{"create", "read", "list", "delete"} {
		l := slices.Clone(s.lat[kind])
		if len(l) == 0 {
			continue
		}
		slices.Sort(l)
		total += len(l)
		q := func(p float64) time.Duration {
			return l[min(len(l)-1, int(float64(len(l))*p))].Round(100 * time.Microsecond)
		}
		t.Logf("%-6s %6d calls %7.1f/s  p50 %-9s p99 %-9s max %-9s statuses %v", kind, len(l),
			float64(len(l))/elapsed.Seconds(), q(0.50), q(0.99), l[len(l)-1].Round(time.Millisecond), s.status[kind])
		var answers []string
		for _, code := range slices.Sorted(maps.Keys(s.status[kind])) {
			answers = append(answers, fmt.Sprintf("%d: %d", code, s.status[kind][code]))
		}
		rows = append(rows, fmt.Sprintf("| %s | %d | %.1f | %s | %s | %s | %s |", kind, len(l),
			float64(len(l))/elapsed.Seconds(), q(0.50), q(0.99), l[len(l)-1].Round(time.Millisecond), strings.Join(answers, ", ")))
	}
	t.Logf("all    %6d calls %7.1f/s in %s; %d 5xx, %d transport errors", total, float64(total)/elapsed.Seconds(),
		elapsed.Round(time.Second), s.fivexx, s.transport)
	rows = append(rows, fmt.Sprintf("| all | %d | %.1f | | | | 5xx: %d; transport errors: %d |", total,
		float64(total)/elapsed.Seconds(), s.fivexx, s.transport))
	return rows
}

const (
	loadBegin = "<!-- load-test:begin (written by `make load`) -->"
	loadEnd   = "<!-- load-test:end -->"
)

// writeLoadSection writes the run's figures between the load test's
// markers in file (PADDOCK_LOAD_OUT; `make load` sets it to BENCHMARKS.md).
func writeLoadSection(t *testing.T, file string, clients int, elapsed time.Duration, rows []string, accounting string) {
	t.Helper()
	load, _ := os.ReadFile("/proc/loadavg")
	verdict := "The test passed: no 5xx, nothing lost, duplicated or unaccounted for, every request in its final state."
	if t.Failed() {
		verdict = "The test failed; its errors are in the test's output."
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Measured on %s, %s: %d API clients for %s against `portal dev` on the simulated cluster; %d CPUs, load average at the end %s.\n\n",
		stamp.Commit(), time.Now().UTC().Format("2006-01-02 15:04 UTC"), clients, elapsed.Round(time.Second), runtime.NumCPU(),
		strings.Join(strings.Fields(string(load))[:min(3, len(strings.Fields(string(load))))], " "))
	b.WriteString("| Call | Calls | Per second | p50 | p99 | max | Answers (status: count) |\n|---|---:|---:|---:|---:|---:|---|\n")
	for _, r := range rows {
		b.WriteString(r + "\n")
	}
	fmt.Fprintf(&b, "\n%s\n\n%s\n", accounting, verdict)
	if err := stamp.Splice(file, loadBegin, loadEnd, b.String(), ""); err != nil {
		t.Errorf("write %s: %v", file, err)
	}
}
