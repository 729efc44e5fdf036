package provision_test

import (
	"errors"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"paddock/internal/provision"
	"paddock/internal/store"
	"paddock/internal/templatefile"
	"paddock/templates"
)

// TestKubePoolScaleChangesReplicasAndQuotaTogether runs a pool through the
// real API server as the RBAC-limited provisioner, with KubeVirt's pool
// webhook validating every create and update: the pool comes up with each
// member listed with its IP; scaling changes spec.replicas and the team's
// quota usage together; scaling beyond quota is refused naming the limit;
// scaling beyond policy waits for an approval and changes nothing until then,
// not even when a reconcile runs meanwhile.
func TestKubePoolScaleChangesReplicasAndQuotaTogether(t *testing.T) {
	h, ns := newKubeHarness(t, nil)
	poolScaleWithQuota(t, h, ns)
}

// TestKubePoolScaleChangesReplicasAndQuotaTogetherOnRealVirtControllerWithNodeStandIns
// is the same on the cluster that runs KubeVirt's own pool controller
// (kubelet and virt-handler stood in for, no Simulator).
func TestKubePoolScaleChangesReplicasAndQuotaTogetherOnRealVirtControllerWithNodeStandIns(t *testing.T) {
	h, ns, _ := newControllersHarness(t, "pool-quota")
	poolScaleWithQuota(t, h, ns)
}

func poolScaleWithQuota(t *testing.T, h *harness, ns string) {
	h.limit = 60 * time.Second
	owner := store.UserActor(h.dev)
	platform, err := h.st.EnsureUser(h.ctx, "platform", "Platform", store.RolePlatform, nil)
	if err != nil {
		t.Fatal(err)
	}
	manager, err := h.st.EnsureUser(h.ctx, "manager", "Manager", store.RoleManager, nil)
	if err != nil {
		t.Fatal(err)
	}
	setQuota := func(vms int) {
		t.Helper()
		if err := h.st.SetTeamQuota(h.ctx, store.Quota{TeamID: h.team.ID, VMs: &vms}, store.UserActor(platform)); err != nil {
			t.Fatal(err)
		}
	}
	setQuota(3)

	r := h.submitPool("cirros", "nano", "workers", 3)
	r = h.wait(r.ID, store.StateRunning, poolReady(3))
	for _, m := range r.Members {
		if !strings.HasPrefix(m.Name, "workers-") || m.Status != "Running" || m.IP == "" {
			t.Errorf("member %+v", m)
		}
	}

	// together waits until the pool on the API server has n replicas and
	// n members, and the team's quota counts n VMs.
	together := func(n int) {
		t.Helper()
		deadline := time.Now().Add(h.limit)
		for {
			replicas, members := h.poolIn(ns, "workers")
			u, err := h.st.TeamUsage(h.ctx, h.team.ID)
			if err != nil {
				t.Fatal(err)
			}
			if replicas == n && len(members) == n && u.VMs == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("want %d: spec.replicas %d, members %v, quota usage %d VMs", n, replicas, members, u.VMs)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	together(3)

	scale := func(n int) store.Scale {
		t.Helper()
		sc, err := h.st.ScalePool(h.ctx, r.ID, n, owner)
		if err != nil {
			t.Fatalf("scale to %d: %v", n, err)
		}
		return sc
	}
	scale(2)
	together(2)
	r = h.wait(r.ID, store.StateRunning, poolReady(2))
	scale(3)
	together(3)
	r = h.wait(r.ID, store.StateRunning, poolReady(3))

	// Beyond quota: refused, naming the limit; nothing changes.
	_, err = h.st.ScalePool(h.ctx, r.ID, 4, owner)
	if got, want := grField(err, "replicas"), "exceeds the quota of team payments: VMs 4 of 3"; got != want {
		t.Fatalf("scale beyond quota: %q, want %q (err %v)", got, want, err)
	}
	together(3)

	// Scaled outside Paddock, over the quota: the watcher sees the pool's
	// spec differ from the request and enqueues its reconcile, which
	// scales the pool back.
	scaleBehindPaddocksBack(t, h, ns, "workers", 5)
	together(3)

	// Beyond policy (cirros: 3 without approval): an approval, and the pool
	// keeps its size until someone approves.
	setQuota(10)
	if sc := scale(5); !sc.Pending || sc.To != 3 {
		t.Fatalf("scale beyond policy: %+v", sc)
	}
	// Scaled outside Paddock while the approval waits: the reconcile that
	// follows sets the pool back to the 3 VMs it has, not to the 5 asked
	// for. (Until Paddock's reconcile runs, spec.replicas stays 4.)
	scaleBehindPaddocksBack(t, h, ns, "workers", 4)
	together(3)
	as, err := h.st.ApprovalsOf(h.ctx, r.ID)
	if err != nil || len(as) != 1 || as[0].Kind != store.ApprovalScale || as[0].Replicas != 5 {
		t.Fatalf("approvals: %+v %v", as, err)
	}
	if _, err := h.st.DecideApproval(h.ctx, as[0].ID, manager, true, "load test"); err != nil {
		t.Fatal(err)
	}
	together(5)
	r = h.wait(r.ID, store.StateRunning, poolReady(5))

	// Delete: the pool and its members go, and the quota is free again.
	if err := h.st.RequestAction(h.ctx, r.ID, store.ActionDelete, owner); err != nil {
		t.Fatal(err)
	}
	h.wait(r.ID, store.StateDeleted, nil)
	h.waitNoVMs(ns)
	if u, _ := h.st.TeamUsage(h.ctx, h.team.ID); u.VMs != 0 {
		t.Errorf("usage after delete: %+v", u)
	}
}

// TestKubePoolWebhookValidatesPaddocksPools checks that KubeVirt's pool
// admission webhook sees the provisioner's pools, on create and on update.
func TestKubePoolWebhookValidatesPaddocksPools(t *testing.T) {
	h, ns := newKubeHarness(t, nil)
	specs, err := templatefile.Read(templates.FS)
	if err != nil {
		t.Fatal(err)
	}
	var spec store.TemplateSpec
	for _, s := range specs {
		if s.Name == "cirros" {
			spec = s
		}
	}
	r := store.Request{ID: 42, TeamName: "payments", Namespace: ns, RequesterLogin: "dev", TemplateName: spec.Name,
		TemplateVersion: 1, Size: spec.Sizes[0].Name, Name: "checked", SSHPublicKey: sshKey, Pool: true, Replicas: 2}
	bad, err := provision.RenderPool(spec, r)
	if err != nil {
		t.Fatal(err)
	}
	// A disk without its volume: the CRD schema allows it, the webhook does not.
	bad.Spec.VirtualMachineTemplate.Spec.Template.Spec.Volumes[0].Name = "other"
	_, err = h.cluster.CreatePool(h.ctx, bad)
	if err == nil || !strings.Contains(err.Error(), "virtualmachinepool-validator.kubevirt.io") {
		t.Fatalf("create an invalid pool: %v, want the pool webhook's denial", err)
	}
	good, err := provision.RenderPool(spec, r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.cluster.CreatePool(h.ctx, good); err != nil {
		t.Fatalf("create a rendered pool: %v", err)
	}
	// An update that breaks the selector is denied too.
	patch := `{"spec":{"selector":{"matchLabels":{"paddock.dev/pool":"someone-else"}}}}`
	_, err = h.cluster.Virt.PoolV1beta1().VirtualMachinePools(ns).Patch(h.ctx, "checked", types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	if err == nil || !strings.Contains(err.Error(), "virtualmachinepool-validator.kubevirt.io") {
		t.Fatalf("patch the selector: %v, want the pool webhook's denial", err)
	}
	if err := h.cluster.ScalePool(h.ctx, ns, "checked", "42", 3); err != nil {
		t.Fatalf("scale a rendered pool: %v", err)
	}
}

// TestKubePoolRebuild rebuilds a pool on the real API server: the new pool
// is created only once the old one and all its members are gone, so old and
// new members never exist together.
func TestKubePoolRebuild(t *testing.T) {
	h, ns := newKubeHarness(t, nil)
	poolRebuild(t, h, ns)
}

// TestKubePoolRebuildOnRealVirtControllerWithNodeStandIns is the same on
// the cluster that runs KubeVirt's own pool controller and garbage
// collector (kubelet and virt-handler stood in for, no Simulator).
func TestKubePoolRebuildOnRealVirtControllerWithNodeStandIns(t *testing.T) {
	h, ns, _ := newControllersHarness(t, "pool-rebuild")
	poolRebuild(t, h, ns)
}

func poolRebuild(t *testing.T, h *harness, ns string) {
	h.limit = 60 * time.Second
	r := h.submitPool("cirros", "nano", "fleet", 2)
	r = h.wait(r.ID, store.StateRunning, poolReady(2))
	oldUID := r.VM.UID
	if _, err := h.st.RequestRebuild(h.ctx, r.ID, 0, store.UserActor(h.dev)); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(h.limit)
	for {
		list, err := h.cluster.Virt.KubevirtV1().VirtualMachines(ns).List(h.ctx, metav1.ListOptions{LabelSelector: provision.LabelPool + "=fleet"})
		if err != nil {
			t.Fatal(err)
		}
		owners := map[types.UID]bool{}
		for _, vm := range list.Items {
			if ref := metav1.GetControllerOf(&vm); ref != nil {
				owners[ref.UID] = true
			}
		}
		if len(owners) > 1 {
			t.Fatalf("members of %d pools at once: %v", len(owners), owners)
		}
		got, err := h.st.Request(h.ctx, r.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got.State == store.StateRunning && got.VM.UID != oldUID && poolReady(2)(got) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rebuild did not finish: %s (%s)", got.State, got.StateReason)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// grField is the message of a *store.ValidationError for field.
func grField(err error, field string) string {
	var v *store.ValidationError
	if !errors.As(err, &v) {
		return ""
	}
	return v.For(field)
}
