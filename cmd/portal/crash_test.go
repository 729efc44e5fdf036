package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestCrashDuringProvisioning runs `portal serve` against the test API
// server and kills it (SIGKILL, from inside, at a failpoint) at each step of
// provisioning a request:
//
//   - before-job: the request and its job are committed, a worker has taken
//     the job and done nothing yet;
//   - before-create: the request is read, the VirtualMachine not yet created;
//   - after-create: the VirtualMachine exists, but that is not recorded;
//   - observe: the watcher is about to record what it saw of the new VM;
//   - observe-running: the VM runs, but that is not recorded.
//
// Checks made before the restart show the process died at that step. A
// fresh `portal serve` then brings the request to running, with exactly one
// VirtualMachine in the namespace and each state change recorded once.
func TestCrashDuringProvisioning(t *testing.T) {
	crashDuringProvisioning(t, func(t *testing.T) *clusterFixture { return newClusterFixture(t, "crash") })
}

// TestCrashDuringProvisioningOnRealVirtControllerWithNodeStandIns is
// TestCrashDuringProvisioning on the cluster that runs KubeVirt's own
// virt-controller and kube-controller-manager (kubelet and virt-handler
// stood in for, no Simulator): the status the restarted portal records is
// KubeVirt's.
func TestCrashDuringProvisioningOnRealVirtControllerWithNodeStandIns(t *testing.T) {
	crashDuringProvisioning(t, func(t *testing.T) *clusterFixture { return newControllersFixture(t, "crash-vc") })
}

func crashDuringProvisioning(t *testing.T, fixture func(*testing.T) *clusterFixture) {
	cases := []struct {
		failpoint string
		// before checks the state the crash left behind.
		before func(t *testing.T, f *clusterFixture, id int64)
	}{
		{"before-job", func(t *testing.T, f *clusterFixture, id int64) {
			if total, _ := f.vmsByRequest(t); total != 0 {
				t.Errorf("%d VirtualMachines before any job ran", total)
			}
			if state := requestState(t, f, id); state != "approved" {
				t.Errorf("request is %s before any job ran, want approved", state)
			}
			var jobs int
			queryInt(t, f, &jobs, `SELECT count(*) FROM river_job WHERE kind = 'reconcile' AND (args->>'request_id')::bigint = $1 AND state = 'running'`, id)
			if jobs != 1 {
				t.Errorf("%d running provision jobs left by the dead process, want 1", jobs)
			}
		}},
		{"before-create", func(t *testing.T, f *clusterFixture, id int64) {
			if total, _ := f.vmsByRequest(t); total != 0 {
				t.Errorf("%d VirtualMachines before the create", total)
			}
		}},
		{"after-create", func(t *testing.T, f *clusterFixture, id int64) {
			if total, _ := f.vmsByRequest(t); total != 1 {
				t.Errorf("%d VirtualMachines after the create, want 1", total)
			}
			if rows := vmRows(t, f, id); rows != 0 {
				t.Errorf("the VM was recorded (%d rows) before the crash", rows)
			}
		}},
		{"observe", func(t *testing.T, f *clusterFixture, id int64) {
			if total, _ := f.vmsByRequest(t); total != 1 {
				t.Errorf("%d VirtualMachines while status syncs, want 1", total)
			}
			if n := runningEvents(t, f, id); n != 0 {
				t.Errorf("%d running events before the restart; the failpoint came too late", n)
			}
		}},
		{"observe-running", func(t *testing.T, f *clusterFixture, id int64) {
			if total, _ := f.vmsByRequest(t); total != 1 {
				t.Errorf("%d VirtualMachines while status syncs, want 1", total)
			}
			if n := runningEvents(t, f, id); n != 0 {
				t.Errorf("%d running events before the restart; the failpoint came too late", n)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.failpoint, func(t *testing.T) {
			t.Parallel()
			f := fixture(t)
			p := f.serve(t, "PADDOCK_FAILPOINT="+c.failpoint)
			tok := token(t, f.dbURL, "developer")
			name := "crash-" + c.failpoint
			id := submitDying(t, f, p.base, tok, name)
			select {
			case <-p.done:
			case <-time.After(30 * time.Second):
				t.Fatalf("the portal did not die at %s", c.failpoint)
			}
			if !strings.Contains(p.log(), "failpoint reached") {
				t.Fatalf("died, but not at the failpoint:\n%s", p.log())
			}
			c.before(t, f, id)

			p2 := f.serve(t)
			start := time.Now()
			r := waitState(t, p2.base, tok, id, "running", 90*time.Second)
			t.Logf("running %s after the restart", time.Since(start).Round(100*time.Millisecond))
			if r.VM == nil || r.VM.Namespace != f.ns || r.VM.Name != name {
				t.Errorf("vm = %+v", r.VM)
			}
			// Every job that could still create a VM for the request has
			// ended, the dead process's included: River rescues it once
			// PADDOCK_JOB_TIMEOUT and a margin have passed, and it runs again.
			start = time.Now()
			waitJobsEnded(t, f, id, 2*time.Minute)
			t.Logf("its reconcile jobs ended %s later", time.Since(start).Round(100*time.Millisecond))
			total, byRequest := f.vmsByRequest(t)
			if total != 1 || byRequest[fmt.Sprint(id)] != 1 {
				t.Errorf("after recovery: VirtualMachines by request %v, want one for request %d", byRequest, id)
			}
			var created int
			queryInt(t, f, &created, `SELECT count(*) FROM events WHERE request_id = $1 AND kind = 'vm_created'`, id)
			if rows := vmRows(t, f, id); rows != 1 || created != 1 {
				t.Errorf("after recovery: %d vm rows, %d vm_created events; want 1 each", rows, created)
			}
			if n := runningEvents(t, f, id); n != 1 {
				t.Errorf("after recovery: %d events into running, want 1", n)
			}
			f.checkEventsOnce(t)
		})
	}
}

// submitDying submits a request to a portal that may die before it answers
// (a failpoint in the job can fire first); the request is then looked up by
// name. It was committed either way: the job runs only after the commit.
func submitDying(t *testing.T, f *clusterFixture, base, tok, name string) int64 {
	t.Helper()
	body := fmt.Sprintf(`{"template":"ubuntu-2404","size":"small","name":%q,"sshPublicKey":%q,"leaseDays":3,"justification":"test"}`, name, sshKey)
	status, b := call(t, base, tok, "POST", "/api/v1/requests", body)
	if status == 201 {
		var r apiReq
		if err := json.Unmarshal(b, &r); err != nil {
			t.Fatal(err)
		}
		return r.ID
	}
	if status != 0 {
		t.Fatalf("submit: %d %s", status, b)
	}
	var id int64
	err := f.pool.QueryRow(context.Background(), `SELECT id FROM requests WHERE name = $1`, name).Scan(&id)
	if errors.Is(err, pgx.ErrNoRows) {
		t.Fatalf("the portal died before answering and the request %q is not in the database", name)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("the portal died before answering; request %d was committed", id)
	return id
}

// waitJobsEnded waits until request id has no reconcile job that is not
// completed, cancelled or discarded.
func waitJobsEnded(t *testing.T, f *clusterFixture, id int64, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		var states []string
		err := f.pool.QueryRow(context.Background(), `SELECT coalesce(array_agg(state::text ORDER BY id), '{}') FROM river_job
			WHERE kind = 'reconcile' AND (args->>'request_id')::bigint = $1
			AND state NOT IN ('completed', 'cancelled', 'discarded')`, id).Scan(&states)
		if err != nil {
			t.Fatal(err)
		}
		if len(states) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("request %d still has reconcile jobs %v after %s", id, states, limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func queryInt(t *testing.T, f *clusterFixture, dst *int, sql string, args ...any) {
	t.Helper()
	if err := f.pool.QueryRow(context.Background(), sql, args...).Scan(dst); err != nil {
		t.Fatal(err)
	}
}

func requestState(t *testing.T, f *clusterFixture, id int64) string {
	t.Helper()
	var s string
	if err := f.pool.QueryRow(context.Background(), `SELECT state FROM requests WHERE id = $1`, id).Scan(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

func vmRows(t *testing.T, f *clusterFixture, id int64) int {
	t.Helper()
	var n int
	queryInt(t, f, &n, `SELECT count(*) FROM vms WHERE request_id = $1`, id)
	return n
}

// runningEvents counts the request's recorded moves into running.
func runningEvents(t *testing.T, f *clusterFixture, id int64) int {
	t.Helper()
	var n int
	queryInt(t, f, &n, `SELECT count(*) FROM events WHERE request_id = $1 AND to_state = 'running' AND from_state <> 'running'`, id)
	return n
}
