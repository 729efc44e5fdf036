package store_test

import (
	"context"
	"errors"
	"testing"

	"paddock/internal/store"
	"paddock/internal/testdb"
)

// provisioned moves an approved request to provisioning as the provisioner
// would, recording a VM (for a pool: the VirtualMachinePool) named after it.
func (b bundle) provisioned(t *testing.T, r store.Request) {
	t.Helper()
	err := testdb.Provision(context.Background(), b.st, r.ID, func(r store.Request) (store.VM, error) {
		return store.VM{Namespace: r.Namespace, Name: r.Name, UID: "uid-" + r.Name, Manifest: "kind: VirtualMachinePool\n"}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func (b bundle) usage(t *testing.T) store.Usage {
	t.Helper()
	u, err := b.st.TeamUsage(context.Background(), b.team.ID)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestPoolPolicyDecide(t *testing.T) {
	t.Parallel()
	tpl := testTemplate("ubuntu", true)
	small, _ := tpl.Size("small")
	big := tpl
	big.MaxAutoReplicas = 10
	for _, c := range []struct {
		name string
		in   store.PolicyInput
		want string
	}{
		{"pool within the default limit", store.PolicyInput{Template: tpl, Size: small, LeaseDays: 7, Replicas: 3},
			"auto-approved: template allows auto-approval; pool of 3 VMs ≤ auto-approve limit 3; lease 7 days ≤ maximum 14"},
		{"pool over the default limit", store.PolicyInput{Template: tpl, Size: small, LeaseDays: 7, Replicas: 4},
			"needs approval: pool of 4 VMs exceeds the auto-approve limit of 3 for template ubuntu"},
		{"template raises the limit", store.PolicyInput{Template: big, Size: small, LeaseDays: 7, Replicas: 10},
			"auto-approved: template allows auto-approval; pool of 10 VMs ≤ auto-approve limit 10; lease 7 days ≤ maximum 14"},
		{"a scale has no lease to judge", store.PolicyInput{Template: tpl, Size: small, Replicas: 2},
			"auto-approved: template allows auto-approval; pool of 2 VMs ≤ auto-approve limit 3"},
	} {
		if got := store.Decide(c.in).String(); got != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.name, got, c.want)
		}
	}
}

func TestPoolCountsAsReplicasInQuota(t *testing.T) {
	b := setup(t)
	b.grSetQuota(t, store.Quota{VMs: intp(5)})
	r, err := b.submit(t, func(n *store.NewRequest) { n.Replicas = 3 })
	if err != nil {
		t.Fatal(err)
	}
	if !r.Pool || r.Replicas != 3 || r.State != store.StateApproved {
		t.Fatalf("pool request: pool=%v replicas=%d state=%s (%s)", r.Pool, r.Replicas, r.State, r.Decision)
	}
	// u1.small is 1 vCPU and 2 GiB: three of them.
	if u := b.usage(t); u != (store.Usage{VMs: 3, VCPU: 3, MemoryMiB: 6144}) {
		t.Errorf("usage = %+v, want 3 VMs, 3 vCPU, 6 GiB", u)
	}
	_, err = b.submit(t, func(n *store.NewRequest) { n.Name = "web-2"; n.Replicas = 3 })
	if got, want := grFieldError(err, "quota"), "exceeds the quota of team payments: VMs 6 of 5"; got != want {
		t.Errorf("second pool: quota error %q, want %q (err %v)", got, want, err)
	}
	_, err = b.submit(t, func(n *store.NewRequest) { n.Name = "web-3"; n.Replicas = store.MaxPoolReplicas + 1 })
	if got := grFieldError(err, "replicas"); got != "must be between 1 and 100 VMs" {
		t.Errorf("too many replicas: %q (err %v)", got, err)
	}
	// A pool beyond policy waits for a person, and counts only once approved.
	g, err := b.submit(t, func(n *store.NewRequest) { n.Name = "web-4"; n.Replicas = 2; n.Template = "gated" })
	if err != nil {
		t.Fatal(err)
	}
	if g.State != store.StatePendingApproval {
		t.Fatalf("gated pool is %s", g.State)
	}
	if _, err := b.st.DecideApproval(context.Background(), b.grOpenApproval(t, g.ID).ID, b.other, true, ""); err != nil {
		t.Fatal(err)
	}
	if u := b.usage(t); u.VMs != 5 {
		t.Errorf("after approving a pool of 2: %d VMs, want 5", u.VMs)
	}
}

func TestScalePoolWithinQuotaAndPolicy(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	b.grSetQuota(t, store.Quota{VMs: intp(4)})
	r, err := b.submit(t, func(n *store.NewRequest) { n.Replicas = 2 })
	if err != nil {
		t.Fatal(err)
	}
	owner := store.UserActor(b.dev)
	// Not yet provisioned: nothing to scale.
	if _, err := b.st.ScalePool(ctx, r.ID, 3, owner); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("scale an approved pool: %v, want a conflict", err)
	}
	b.provisioned(t, r)

	sc, err := b.st.ScalePool(ctx, r.ID, 3, owner)
	if err != nil || sc.From != 2 || sc.To != 3 || sc.Pending {
		t.Fatalf("scale to 3: %+v, %v", sc, err)
	}
	if u := b.usage(t); u.VMs != 3 {
		t.Errorf("usage after scale-up: %d VMs, want 3", u.VMs)
	}
	_, err = b.st.ScalePool(ctx, r.ID, 5, owner)
	if got, want := grFieldError(err, "replicas"), "exceeds the quota of team payments: VMs 5 of 4"; got != want {
		t.Errorf("over quota: %q, want %q (err %v)", got, want, err)
	}
	if _, err := b.st.ScalePool(ctx, r.ID, 0, owner); grFieldError(err, "replicas") != "must be between 1 and 100 VMs" {
		t.Errorf("scale to 0: %v", err)
	}

	// Beyond policy (default limit 3): an approval, and no change until then.
	b.grSetQuota(t, store.Quota{VMs: intp(10)})
	sc, err = b.st.ScalePool(ctx, r.ID, 5, owner)
	if err != nil || !sc.Pending || sc.To != 3 {
		t.Fatalf("scale beyond policy: %+v, %v", sc, err)
	}
	if got, _ := b.st.Request(ctx, r.ID); got.Replicas != 3 {
		t.Errorf("replicas before approval = %d, want 3", got.Replicas)
	}
	queue, err := b.st.ApprovalQueue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(queue) != 1 || queue[0].Kind != store.ApprovalScale || queue[0].Replicas != 5 {
		t.Fatalf("queue = %+v, want one scale approval for 5", queue)
	}
	// A second scale-up beyond policy while one waits is refused.
	if _, err := b.st.ScalePool(ctx, r.ID, 6, owner); !errors.Is(err, store.ErrConflict) {
		t.Errorf("second scale-up while one waits: %v", err)
	}
	// The quota is checked again when approving.
	b.grSetQuota(t, store.Quota{VMs: intp(4)})
	if _, err := b.st.DecideApproval(ctx, queue[0].ID, b.other, true, ""); !errors.Is(err, store.ErrConflict) {
		t.Errorf("approve over quota: %v, want a conflict", err)
	}
	b.grSetQuota(t, store.Quota{VMs: intp(10)})
	if _, err := b.st.DecideApproval(ctx, queue[0].ID, b.other, true, "load test"); err != nil {
		t.Fatal(err)
	}
	if got, _ := b.st.Request(ctx, r.ID); got.Replicas != 5 {
		t.Errorf("replicas after approval = %d, want 5", got.Replicas)
	}
	if u := b.usage(t); u.VMs != 5 {
		t.Errorf("usage after approval: %d VMs, want 5", u.VMs)
	}

	// Shrinking needs nobody.
	if sc, err := b.st.ScalePool(ctx, r.ID, 1, owner); err != nil || sc.To != 1 {
		t.Fatalf("scale down: %+v, %v", sc, err)
	}
	if u := b.usage(t); u.VMs != 1 {
		t.Errorf("usage after scale-down: %d VMs, want 1", u.VMs)
	}
	// A rejected scale-up leaves the pool as it was.
	if sc, err := b.st.ScalePool(ctx, r.ID, 4, owner); err != nil || !sc.Pending {
		t.Fatalf("scale to 4: %+v, %v", sc, err)
	}
	if _, err := b.st.DecideApproval(ctx, b.grOpenApproval(t, r.ID).ID, b.other, false, "not now"); err != nil {
		t.Fatal(err)
	}
	got, _ := b.st.Request(ctx, r.ID)
	if got.Replicas != 1 {
		t.Errorf("replicas after rejection = %d, want 1", got.Replicas)
	}
	evs, err := b.st.Events(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, e := range evs {
		kinds[e.Kind]++
	}
	if kinds["scale"] != 3 || kinds["scale_requested"] != 2 || kinds["scale_rejected"] != 1 {
		t.Errorf("events by kind: %v", kinds)
	}

	// A single VM is not a pool.
	vm, err := b.submit(t, func(n *store.NewRequest) { n.Name = "solo" })
	if err != nil {
		t.Fatal(err)
	}
	b.provisioned(t, vm)
	if _, err := b.st.ScalePool(ctx, vm.ID, 2, owner); !errors.Is(err, store.ErrConflict) {
		t.Errorf("scale a single VM: %v, want a conflict", err)
	}
}

func TestObservePoolMembers(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	r, err := b.submit(t, func(n *store.NewRequest) { n.Replicas = 2 })
	if err != nil {
		t.Fatal(err)
	}
	b.provisioned(t, r)
	members := []store.PoolMember{
		{Name: "web-1-10", Status: "Starting"},
		{Name: "web-1-2", Status: "Running", IP: "10.0.0.2", Ready: true},
	}
	o := store.Observation{Pool: true, Status: "1/2 ready", State: store.StateProvisioning, Members: members,
		Namespace: r.Namespace, Name: r.Name, UID: "uid-" + r.Name}
	if _, err := b.st.Observe(ctx, r.ID, o); err != nil {
		t.Fatal(err)
	}
	got, err := b.st.Request(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.Members) != 2 || got.Members[0].Name != "web-1-2" || got.Members[0].IP != "10.0.0.2" || got.Members[1].Name != "web-1-10" {
		t.Fatalf("members = %+v", got.Members)
	}
	// A member gone from the cluster is gone from the list.
	o.Members = members[1:]
	o.State, o.Status = store.StateRunning, "1/1 ready"
	if moved, err := b.st.Observe(ctx, r.ID, o); err != nil || moved != store.StateRunning {
		t.Fatalf("observe running: %s, %v", moved, err)
	}
	got, _ = b.st.Request(ctx, r.ID)
	if len(got.Members) != 1 || got.VM.Status != "1/1 ready" {
		t.Fatalf("members = %+v, status %q", got.Members, got.VM.Status)
	}
	// The pool deleted outside Paddock.
	if moved, err := b.st.Observe(ctx, r.ID, store.Observation{Pool: true, Gone: true,
		Namespace: r.Namespace, Name: r.Name, UID: "uid-" + r.Name}); err != nil || moved != store.StateDeleted {
		t.Fatalf("observe gone: %s, %v", moved, err)
	}
	got, _ = b.st.Request(ctx, r.ID)
	if len(got.Members) != 0 || got.StateReason != "the VirtualMachinePool was deleted outside Paddock" {
		t.Errorf("after drift: members %+v, reason %q", got.Members, got.StateReason)
	}
}
