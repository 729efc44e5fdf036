package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestPostgresRestartUnderLoad restarts the portal's PostgreSQL while
// clients submit requests. While it is down the portal answers 503 with a
// Retry-After hint (never a 500 or a stack trace); it recovers on its own;
// every request the clients saw accepted reaches running, exactly once.
func TestPostgresRestartUnderLoad(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a private PostgreSQL")
	}
	t.Parallel()
	dir, err := os.MkdirTemp("", "paddock-pgrestart-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	var dblog strings.Builder
	db, err := newDevDB(dir, &syncWriter{w: &dblog})
	if err != nil {
		t.Skipf("no PostgreSQL binaries: %v", err)
	}
	// As root, the cluster lives outside dir, in the postgres user's home.
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(db.data)) })
	ctx := context.Background()
	if err := db.Start(ctx); err != nil {
		t.Fatalf("start private PostgreSQL: %v\n%s", err, dblog.String())
	}
	t.Cleanup(db.Stop)
	p := startPortal(t, db.URL())
	tok := token(t, db.URL(), "developer")
	// This test makes many VMs: lift the demo team's quota.
	if c, err := pgx.Connect(ctx, db.URL()); err == nil {
		_, err = c.Exec(ctx, `DELETE FROM team_quotas`)
		c.Close(ctx)
		if err != nil {
			t.Fatal(err)
		}
	}

	var (
		stop        atomic.Bool
		unavailable atomic.Int64
		mu          sync.Mutex
		accepted    = map[string]int64{} // idempotency key → request id
		problems    []string
	)
	var wg sync.WaitGroup
	for c := range 4 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				key := fmt.Sprintf("c%d-%d", c, i)
				body := fmt.Sprintf(`{"template":"cirros","size":"nano","name":"vm-%s","sshPublicKey":%q,"leaseDays":1}`, key, sshKey)
				// Retry the same submission, as a careful client does, until it is accepted.
				for {
					req, _ := http.NewRequest("POST", p.base+"/api/v1/requests", strings.NewReader(body))
					req.Header.Set("Authorization", "Bearer "+tok)
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Idempotency-Key", key)
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						mu.Lock()
						problems = append(problems, "transport error: "+err.Error())
						mu.Unlock()
						return
					}
					var out struct {
						ID     int64  `json:"id"`
						Error  string `json:"error"`
						Fields []struct{ Field, Message string }
					}
					_ = json.NewDecoder(resp.Body).Decode(&out)
					resp.Body.Close()
					if resp.StatusCode == 201 {
						mu.Lock()
						accepted[key] = out.ID
						mu.Unlock()
						break
					}
					if resp.StatusCode == 503 && resp.Header.Get("Retry-After") != "" && out.Error != "" {
						unavailable.Add(1)
						time.Sleep(200 * time.Millisecond)
						continue
					}
					mu.Lock()
					problems = append(problems, fmt.Sprintf("%s: status %d %q %v", key, resp.StatusCode, out.Error, out.Fields))
					mu.Unlock()
					return
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
	nAccepted := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(accepted)
	}
	waitFor := func(what string, limit time.Duration, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(limit); !cond(); time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				stop.Store(true)
				wg.Wait()
				t.Fatalf("%s: not within %s (%d accepted, %d answers 503, problems %v)", what, limit, nAccepted(), unavailable.Load(), problems)
			}
		}
	}
	waitFor("requests accepted before the restart", 30*time.Second, func() bool { return nAccepted() >= 5 })
	db.Stop()
	// Each client sees the outage before PostgreSQL comes back.
	waitFor("503 answers while PostgreSQL is down", 30*time.Second, func() bool { return unavailable.Load() >= 4 })
	if err := db.Start(ctx); err != nil {
		t.Fatalf("restart PostgreSQL: %v\n%s", err, dblog.String())
	}
	before := nAccepted()
	waitFor("requests accepted after the restart", time.Minute, func() bool { return nAccepted() >= before+10 })
	stop.Store(true)
	wg.Wait()

	if len(problems) > 0 {
		t.Fatalf("%d problems, first: %v", len(problems), problems[0])
	}
	if unavailable.Load() == 0 {
		t.Error("no 503 answers while PostgreSQL was down")
	}
	if len(accepted) < 10 {
		t.Fatalf("only %d requests accepted", len(accepted))
	}
	for _, id := range accepted {
		waitState(t, p.base, tok, id, "running", 60*time.Second)
	}
	conn, err := pgx.Connect(ctx, db.URL())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var requests, vms int
	if err := conn.QueryRow(ctx, `SELECT (SELECT count(*) FROM requests), (SELECT count(*) FROM sim_objects WHERE kind = 'VirtualMachine')`).Scan(&requests, &vms); err != nil {
		t.Fatal(err)
	}
	if requests != len(accepted) || vms != len(accepted) {
		t.Errorf("%d accepted, %d requests stored, %d VMs", len(accepted), requests, vms)
	}
	t.Logf("%d requests accepted, %d answers were 503 while PostgreSQL restarted", len(accepted), unavailable.Load())
}

type syncWriter struct {
	mu sync.Mutex
	w  *strings.Builder
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}
