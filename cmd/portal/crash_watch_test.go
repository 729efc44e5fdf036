package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"paddock/internal/testdb"
)

// TestCrashWhileStatusSyncs kills the portal (SIGKILL, from inside, at a
// watcher failpoint) while it is recording what it saw in the cluster: before
// its first observation of the new VM is written, and when the VM runs but
// that is not yet recorded. After a restart the request reaches running with
// exactly one VirtualMachine and exactly one event into running.
func TestCrashWhileStatusSyncs(t *testing.T) {
	for _, fp := range []string{"observe", "observe-running"} {
		t.Run(fp, func(t *testing.T) {
			t.Parallel()
			dbURL := testdb.NewURL(t)
			p := startPortal(t, dbURL, "PADDOCK_FAILPOINT="+fp)
			tok := token(t, dbURL, "developer")
			r := submit(t, p.base, tok, "sync-"+fp)
			select {
			case <-p.done:
			case <-time.After(30 * time.Second):
				t.Fatalf("the portal did not die at %s", fp)
			}
			if !strings.Contains(p.log(), "failpoint reached") {
				t.Fatalf("died, but not at the failpoint:\n%s", p.log())
			}
			if running := countRunningEvents(t, dbURL, r.ID); running != 0 {
				t.Fatalf("%d running events before the restart; the failpoint came too late", running)
			}
			p2 := startPortal(t, dbURL)
			waitState(t, p2.base, tok, r.ID, "running", 60*time.Second)
			// Let the restarted watcher's resync and any late events settle.
			time.Sleep(time.Second)
			sim, rows, created := countVMs(t, dbURL, r.ID)
			if sim != 1 || rows != 1 || created != 1 {
				t.Errorf("after recovery: %d VirtualMachines, %d vm rows, %d vm_created events; want 1 each", sim, rows, created)
			}
			if running := countRunningEvents(t, dbURL, r.ID); running != 1 {
				t.Errorf("after recovery: %d events into running, want 1", running)
			}
		})
	}
}

func countRunningEvents(t *testing.T, dbURL string, id int64) int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dbURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var n int
	err = conn.QueryRow(ctx, `SELECT count(*) FROM events WHERE request_id = $1 AND to_state = 'running' AND from_state <> 'running'`, id).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
