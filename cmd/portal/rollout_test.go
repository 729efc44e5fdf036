package main

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	virtv1 "kubevirt.io/api/core/v1"

	"paddock/internal/provision"
	"paddock/internal/store"
)

type apiRollout struct {
	ID           int64          `json:"id"`
	State        string         `json:"state"`
	Reason       string         `json:"reason"`
	CurrentBatch int            `json:"currentBatch"`
	Counts       map[string]int `json:"counts"`
	VMs          []struct {
		RequestID    int64  `json:"requestId"`
		Name         string `json:"name"`
		Batch        int    `json:"batch"`
		State        string `json:"state"`
		Reason       string `json:"reason"`
		RequestState string `json:"requestState"`
		Version      int    `json:"version"`
	} `json:"vms"`
}

func getRollout(t *testing.T, base, tok string, id int64) apiRollout {
	t.Helper()
	status, b := call(t, base, tok, "GET", fmt.Sprintf("/api/v1/rollouts/%d", id), "")
	if status != 200 {
		t.Fatalf("rollout %d: %d %s", id, status, b)
	}
	var ro apiRollout
	if err := json.Unmarshal(b, &ro); err != nil {
		t.Fatal(err)
	}
	return ro
}

// waitRollout polls until cond holds, failing after limit with the last
// state seen.
func waitRollout(t *testing.T, base, tok string, id int64, limit time.Duration, what string, cond func(apiRollout) bool) apiRollout {
	t.Helper()
	deadline := time.Now().Add(limit)
	var last apiRollout
	for time.Now().Before(deadline) {
		last = getRollout(t, base, tok, id)
		if cond(last) {
			return last
		}
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("rollout %d not %s after %s: %+v", id, what, limit, last)
	return last
}

// rolloutFailure is how a rollout's test makes v2 of the template fail on
// some VMs, and how it mends that.
type rolloutFailure struct {
	// v2, when set, changes v2 of the template beyond its new cloud-init.
	v2 func(*store.TemplateSpec)
	// failing are the VMs whose rebuild on v2 fails, all in batch batch.
	failing []string
	batch   int
	// fix removes the cause, while the portal is down.
	fix func()
}

// TestRolloutOnRealClusterPausesOnFailureAndSurvivesRestarts rolls ten VMs
// on the real test API server forward in batches of three, with the
// Simulator playing virt-controller. The rebuilt VM of the fifth fails (the
// Simulator fails its image's pull): the rollout pauses on it, with the
// first batch done and nothing of the third and fourth touched. The portal
// is killed while paused; a new one resumes after the cause is fixed, is
// killed again mid-rollout, and a third finishes it. Every VM ends on the
// new version, running, exactly one per request.
func TestRolloutOnRealClusterPausesOnFailureAndSurvivesRestarts(t *testing.T) {
	t.Parallel()
	// The injected failure: the fifth VM, rebuilt on v2, cannot pull its image.
	var broken atomic.Value
	broken.Store("ro-04")
	f := newClusterFixture(t, "rollout", func(sim *provision.Simulator) {
		sim.Broken = func(vm *virtv1.VirtualMachine) bool {
			return vm.Name == broken.Load().(string) && vm.Labels[provision.LabelTemplateVersion] == "2"
		}
	})
	rolloutPausesOnFailureAndSurvivesRestarts(t, f, rolloutFailure{
		failing: []string{"ro-04"}, batch: 2,
		fix: func() { broken.Store("") },
	})
}

// TestRolloutOnRealVirtControllerWithNodeStandInsPausesOnFailureAndSurvivesRestarts
// is the rollout above on the cluster with KubeVirt's own virt-controller
// and kube-controller-manager (kubelet and virt-handler stood in for, no
// Simulator), with a failure as a platform team meets it: v2 of the
// template names an image tag not pushed to its registry yet, so the
// first batch's rebuilt VMs cannot pull it (the stand-in node fails the
// pull as containerd does, and virt-controller reports ErrImagePull) and
// the rollout pauses there, every failure named, with nothing of the later
// batches touched. While the portal is down the image is pushed; a new
// portal resumes, is killed mid-rollout, and a third finishes it.
func TestRolloutOnRealVirtControllerWithNodeStandInsPausesOnFailureAndSurvivesRestarts(t *testing.T) {
	f := newControllersFixture(t, "rollout-vc")
	env := controllersCluster(t)
	const image = "quay.io/containerdisks/ubuntu:24.04-v2"
	env.ImageNotPushed(image)
	rolloutPausesOnFailureAndSurvivesRestarts(t, f, rolloutFailure{
		v2:      func(spec *store.TemplateSpec) { spec.Image.ContainerDisk = image },
		failing: []string{"ro-00", "ro-01", "ro-02"}, batch: 1,
		fix: func() { env.ImagePushed(image) },
	})
}

func rolloutPausesOnFailureAndSurvivesRestarts(t *testing.T, f *clusterFixture, fail rolloutFailure) {
	ctx := context.Background()
	ns, admin, pool, dbURL := f.ns, f.admin, f.pool, f.dbURL
	st := store.New(pool)

	p := f.serve(t)
	dev := token(t, dbURL, "developer")
	plat := token(t, dbURL, "platform")
	const n = 10
	ids := map[string]int64{}
	for i := range n {
		name := fmt.Sprintf("ro-%02d", i)
		ids[name] = submit(t, p.base, dev, name).ID
	}
	oldUIDs := map[string]string{}
	for name, id := range ids {
		waitState(t, p.base, dev, id, "running", 90*time.Second)
		vm, err := admin.Virt.KubevirtV1().VirtualMachines(ns).Get(ctx, name, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		oldUIDs[name] = string(vm.UID)
	}

	// v2 of the template: a new cloud-init.
	tpl, err := st.TemplateByName(ctx, "ubuntu-2404")
	if err != nil {
		t.Fatal(err)
	}
	tpl.Spec.CloudInit += "\n# v2\n"
	if fail.v2 != nil {
		fail.v2(&tpl.Spec)
	}
	if v, _, err := st.PublishTemplate(ctx, tpl.Spec, nil); err != nil || v != 2 {
		t.Fatalf("publish v2: %d %v", v, err)
	}
	status, b := call(t, p.base, plat, "POST", "/api/v1/rollouts", `{"template":"ubuntu-2404","version":2,"batchSize":3}`)
	if status != 201 {
		t.Fatalf("start rollout: %d %s", status, b)
	}
	var ro apiRollout
	if err := json.Unmarshal(b, &ro); err != nil {
		t.Fatal(err)
	}

	// It pauses on the failing VMs, in their batch.
	ro = waitRollout(t, p.base, plat, ro.ID, 3*time.Minute, "paused", func(r apiRollout) bool { return r.State == "paused" })
	if ro.CurrentBatch != fail.batch {
		t.Errorf("paused at batch %d, want %d: %q", ro.CurrentBatch, fail.batch, ro.Reason)
	}
	for _, name := range fail.failing {
		if !strings.Contains(ro.Reason, name) {
			t.Errorf("paused with %q, which does not name %s", ro.Reason, name)
		}
	}
	for _, it := range ro.VMs {
		switch {
		case slices.Contains(fail.failing, it.Name):
			if it.State != "failed" || !strings.Contains(it.Reason, "image") {
				t.Errorf("%s is %s: %q", it.Name, it.State, it.Reason)
			}
		case it.Batch < fail.batch && it.State != "done":
			t.Errorf("%s (batch %d) is %s", it.Name, it.Batch, it.State)
		case it.Batch > fail.batch:
			if it.State != "pending" || it.Version != 1 {
				t.Errorf("%s (batch %d) was touched: %s v%d", it.Name, it.Batch, it.State, it.Version)
			}
			vm, err := admin.Virt.KubevirtV1().VirtualMachines(ns).Get(ctx, it.Name, metav1.GetOptions{})
			if err != nil || string(vm.UID) != oldUIDs[it.Name] {
				t.Errorf("%s was replaced while the rollout was paused: %v", it.Name, err)
			}
		}
	}

	// The portal dies while paused; the cause is fixed; a new portal resumes.
	_ = p.cmd.Process.Signal(syscall.SIGKILL)
	<-p.done
	fail.fix()
	p2 := f.serve(t)
	if status, b := call(t, p2.base, plat, "POST", fmt.Sprintf("/api/v1/rollouts/%d/resume", ro.ID), ""); status != 200 {
		t.Fatalf("resume: %d %s", status, b)
	}
	// Killed again in the middle of batch 3; a third portal finishes.
	waitRollout(t, p2.base, plat, ro.ID, 3*time.Minute, "in batch 3", func(r apiRollout) bool { return r.CurrentBatch >= 3 || r.State != "running" })
	_ = p2.cmd.Process.Signal(syscall.SIGKILL)
	<-p2.done
	p3 := f.serve(t)
	ro = waitRollout(t, p3.base, plat, ro.ID, 3*time.Minute, "completed", func(r apiRollout) bool { return r.State != "running" })
	if ro.State != "completed" || ro.Counts["done"] != n {
		t.Fatalf("rollout ended %s with %v: %q", ro.State, ro.Counts, ro.Reason)
	}
	list, err := admin.Virt.KubevirtV1().VirtualMachines(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	per := map[string]int{}
	for _, vm := range list.Items {
		per[vm.Labels[provision.LabelRequest]]++
		if vm.Labels[provision.LabelTemplateVersion] != "2" || string(vm.UID) == oldUIDs[vm.Name] {
			t.Errorf("%s: v%s, replaced %v", vm.Name, vm.Labels[provision.LabelTemplateVersion], string(vm.UID) != oldUIDs[vm.Name])
		}
	}
	if len(list.Items) != n || len(per) != n {
		t.Errorf("%d VMs for %d requests", len(list.Items), len(per))
	}
	for name, id := range ids {
		r := waitState(t, p3.base, dev, id, "running", 30*time.Second)
		want := 1
		if slices.Contains(fail.failing, name) {
			want = 2
		}
		var rebuilds int
		if err := pool.QueryRow(ctx, `SELECT count(*) FROM events WHERE request_id = $1 AND kind = 'rebuild'`, r.ID).Scan(&rebuilds); err != nil {
			t.Fatal(err)
		}
		if rebuilds != want {
			t.Errorf("%s rebuilt %d times, want %d", name, rebuilds, want)
		}
	}
}
