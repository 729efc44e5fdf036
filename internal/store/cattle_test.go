package store_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"paddock/internal/store"
	"paddock/internal/testdb"
)

// running submits a request of template ubuntu and records its VM, running.
func (b bundle) running(t *testing.T, name, size string) store.Request {
	t.Helper()
	ctx := context.Background()
	r, err := b.submit(t, func(n *store.NewRequest) { n.Name, n.Size = name, size })
	if err != nil {
		t.Fatal(err)
	}
	err = testdb.Provision(ctx, b.st, r.ID, func(r store.Request) (store.VM, error) {
		return store.VM{Namespace: "payments", Name: name, UID: "uid-1", Status: "Running", Manifest: "kind: VirtualMachine\n"}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.st.Transition(ctx, r.ID, store.StateRunning, store.ActorCluster, "state", "", store.StateProvisioning); err != nil {
		t.Fatal(err)
	}
	r, err = b.st.Request(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestRebuildPinsVersionMovesToApprovedAndEnqueues(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	r := b.running(t, "web-1", "small")
	// v2 of the template, with a bigger "custom" size.
	spec := testTemplate("ubuntu", true)
	spec.Image.ContainerDisk = "quay.io/containerdisks/ubuntu:24.10"
	if _, _, err := b.st.PublishTemplate(ctx, spec, nil); err != nil {
		t.Fatal(err)
	}
	before := r.ExpiresAt
	got, err := b.st.RequestRebuild(ctx, r.ID, 0, store.UserActor(b.dev))
	if err != nil {
		t.Fatal(err)
	}
	if got.FromVersion != 1 || got.ToVersion != 2 {
		t.Errorf("rebuild = %+v", got)
	}
	r, err = b.st.Request(ctx, r.ID)
	if err != nil {
		t.Fatal(err)
	}
	if r.State != store.StateApproved || r.TemplateVersion != 2 || r.Desired != "running" || !r.ExpiresAt.Equal(before) ||
		r.Name != "web-1" || r.RequesterID != b.dev.ID {
		t.Errorf("after rebuild: state %s v%d desired %s expires %v (was %v)", r.State, r.TemplateVersion, r.Desired, r.ExpiresAt, before)
	}
	if !strings.Contains(r.StateReason, "rebuilding from ubuntu v2 (was v1)") || !strings.Contains(r.StateReason, "disk starts fresh") {
		t.Errorf("reason %q", r.StateReason)
	}
	if n := countRows(t, b.st, `SELECT count(*) FROM river_job WHERE kind = 'reconcile' AND state = 'available' AND (args->>'request_id')::bigint = $1`, r.ID); n != 1 || r.Generation != 1 {
		t.Errorf("%d reconcile jobs waiting, generation %d", n, r.Generation)
	}
	if n := countRows(t, b.st, `SELECT count(*) FROM events WHERE request_id = $1 AND kind = 'rebuild' AND from_state = 'running' AND to_state = 'approved'`, r.ID); n != 1 {
		t.Errorf("%d rebuild events", n)
	}
	if n := countRows(t, b.st, `SELECT count(*) FROM audit_log WHERE action = 'vm_rebuild'`); n != 1 {
		t.Errorf("%d audit entries", n)
	}
	// A second rebuild while this one runs is refused.
	if _, err := b.st.RequestRebuild(ctx, r.ID, 1, store.UserActor(b.dev)); !errors.Is(err, store.ErrConflict) {
		t.Errorf("second rebuild: %v", err)
	}
	// The provisioner records the new VM: the manifest row is replaced.
	err = testdb.Provision(ctx, b.st, r.ID, func(r store.Request) (store.VM, error) {
		return store.VM{Namespace: "payments", Name: "web-1", UID: "uid-2", Status: "Provisioning", Manifest: "kind: VirtualMachine # v2\n"}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	r, _ = b.st.Request(ctx, r.ID)
	if r.State != store.StateProvisioning || r.VM.UID != "uid-2" || !strings.Contains(r.VM.Manifest, "v2") || r.VM.IP != "" {
		t.Errorf("after provisioning: %s %+v", r.State, r.VM)
	}
	if n := countRows(t, b.st, `SELECT count(*) FROM vms WHERE request_id = $1`, r.ID); n != 1 {
		t.Errorf("%d vm rows", n)
	}
}

func TestRebuildRefusals(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	r := b.running(t, "web-1", "small")
	// A chosen version that does not exist, and a version without the size.
	if _, err := b.st.RequestRebuild(ctx, r.ID, 7, store.UserActor(b.dev)); grFieldError(err, "version") == "" {
		t.Errorf("version 7: %v", err)
	}
	spec := testTemplate("ubuntu", true)
	spec.Sizes = spec.Sizes[1:]
	if _, _, err := b.st.PublishTemplate(ctx, spec, nil); err != nil {
		t.Fatal(err)
	}
	if msg := grFieldError(func() error { _, err := b.st.RequestRebuild(ctx, r.ID, 2, store.UserActor(b.dev)); return err }(), "size"); !strings.Contains(msg, `no size "small"`) {
		t.Errorf("size: %q", msg)
	}
	// Back to v1 passes every check, and is asked of a person.
	if got, err := b.st.RequestRebuild(ctx, r.ID, 1, store.UserActor(b.dev)); err != nil || !got.Pending {
		t.Errorf("rebuild to v1: %+v %v", got, err)
	}
	// A pending request cannot be rebuilt.
	p, err := b.submit(t, func(n *store.NewRequest) { n.Name, n.Template = "gated-1", "gated" })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.st.RequestRebuild(ctx, p.ID, 0, store.UserActor(b.dev)); !errors.Is(err, store.ErrConflict) {
		t.Errorf("pending: %v", err)
	}
	if _, err := b.st.RequestRebuild(ctx, 999999, 0, store.UserActor(b.dev)); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("missing: %v", err)
	}
}

func TestRebuildChecksQuotaForTheNewSize(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	r := b.running(t, "web-1", "custom") // 2 vCPU, 4 GiB
	b.grSetQuota(t, store.Quota{TeamID: b.team.ID, VCPU: intp(3), MemoryMiB: intp(8192), VMs: intp(1)})
	// Same size: fits, although the team is at its VM limit (the VM is replaced, not added).
	if _, err := b.st.RequestRebuild(ctx, r.ID, 0, store.UserActor(b.dev)); err != nil {
		t.Fatalf("same size: %v", err)
	}
	// Room for web-2: the team then uses 4 vCPU of 5.
	b.grSetQuota(t, store.Quota{TeamID: b.team.ID, VCPU: intp(5)})
	r2 := b.running(t, "web-2", "custom")
	// v2 makes "custom" 4 vCPU: 6 of 5, refused, and nothing changes.
	spec := testTemplate("ubuntu", true)
	spec.Sizes[1].CPU = 4
	if _, _, err := b.st.PublishTemplate(ctx, spec, nil); err != nil {
		t.Fatal(err)
	}
	_, err := b.st.RequestRebuild(ctx, r2.ID, 0, store.UserActor(b.dev))
	if msg := grFieldError(err, "quota"); !strings.Contains(msg, "vCPU 6 of 5") {
		t.Errorf("quota: %v", err)
	}
	got, _ := b.st.Request(ctx, r2.ID)
	if got.State != store.StateRunning || got.TemplateVersion != 1 || got.VCPU != 2 {
		t.Errorf("refused rebuild changed the request: %s v%d %d vCPU", got.State, got.TemplateVersion, got.VCPU)
	}
}

func TestPetIsRebuiltOnlyByItsOwner(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	r := b.running(t, "web-1", "small")
	platform := b.grUser(t, "platform", store.RolePlatform)
	if err := b.st.SetPet(ctx, r.ID, true, store.UserActor(b.dev)); err != nil {
		t.Fatal(err)
	}
	if err := b.st.SetPet(ctx, r.ID, true, store.UserActor(b.dev)); err != nil { // no change, no event
		t.Fatal(err)
	}
	if n := countRows(t, b.st, `SELECT count(*) FROM events WHERE request_id = $1 AND kind = 'pet'`, r.ID); n != 1 {
		t.Errorf("%d pet events", n)
	}
	_, err := b.st.RequestRebuild(ctx, r.ID, 0, store.UserActor(platform))
	if !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "web-1 is a pet; only its owner, developer, may rebuild it") {
		t.Errorf("platform rebuilding a pet: %v", err)
	}
	if _, err := b.st.RequestRebuild(ctx, r.ID, 0, store.UserActor(b.dev)); err != nil {
		t.Errorf("owner rebuilding a pet: %v", err)
	}
	got, _ := b.st.Request(ctx, r.ID)
	if !got.Pet {
		t.Error("pet flag lost")
	}
	r2 := b.running(t, "web-2", "small")
	if _, err := b.st.RequestRebuild(ctx, r2.ID, 0, store.UserActor(platform)); err != nil {
		t.Errorf("platform rebuilding cattle: %v", err)
	}
}

func TestTeamManifests(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	b.running(t, "web-b", "small")
	b.running(t, "web-a", "small")
	if _, err := b.submit(t, func(n *store.NewRequest) { n.Name, n.Template = "gated-1", "gated" }); err != nil {
		t.Fatal(err)
	}
	rs, err := b.st.TeamManifests(ctx, b.team.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(rs) != 2 || rs[0].Name != "web-a" || rs[1].Name != "web-b" || rs[0].VM.Manifest == "" {
		t.Errorf("manifests: %d", len(rs))
	}
}

// TestRebuildToAnOlderVersionNeedsApprovalUnlessPlatform: a version older
// than the current one was replaced for a reason. A developer who rebuilds
// to it asks a person (the VM stays as it is until approved, and the
// approver sees why); the platform team rebuilds to it at once; the current
// version needs nobody.
func TestRebuildToAnOlderVersionNeedsApprovalUnlessPlatform(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	platform := b.grUser(t, "platform", store.RolePlatform)
	old := b.running(t, "web-1", "small") // on v1
	spec := testTemplate("ubuntu", true)
	spec.Image.ContainerDisk = "quay.io/containerdisks/ubuntu:24.10"
	if _, _, err := b.st.PublishTemplate(ctx, spec, nil); err != nil {
		t.Fatal(err)
	}
	jobs := func(id int64) int {
		return countRows(t, b.st, `SELECT generation FROM requests WHERE id = $1`, id)
	}

	got, err := b.st.RequestRebuild(ctx, old.ID, 1, store.UserActor(b.dev))
	if err != nil {
		t.Fatal(err)
	}
	const reason = "rebuild to ubuntu v1, older than the current v2"
	if !got.Pending || got.ApprovalID == 0 || got.Reason != reason {
		t.Errorf("developer to v1: %+v, want pending with %q", got, reason)
	}
	a := b.grOpenApproval(t, old.ID)
	if a.Kind != store.ApprovalRebuild || a.Version != 1 || a.Reasons != reason || a.RequestedBy != "developer" {
		t.Errorf("approval: %+v", a)
	}
	if r, _ := b.st.Request(ctx, old.ID); r.State != store.StateRunning || r.TemplateVersion != 1 || jobs(old.ID) != 0 {
		t.Errorf("before approval: %s v%d, %d rebuild jobs", r.State, r.TemplateVersion, jobs(old.ID))
	}
	if n := countRows(t, b.st, `SELECT count(*) FROM audit_log WHERE action = 'vm_rebuild' AND target = $1
		AND details->>'decision' = 'pending_approval' AND details->>'to' = '1'`, store.RequestTarget(old.ID)); n != 1 {
		t.Errorf("%d audit entries for the asked rebuild", n)
	}
	q, err := b.st.ApprovalQueue(ctx)
	if err != nil || len(q) != 1 || q[0].ID != a.ID {
		t.Errorf("queue: %d approvals, %v", len(q), err)
	}
	if _, err := b.st.DecideApproval(ctx, a.ID, b.other, true, "the v2 image breaks our agent"); err != nil {
		t.Fatal(err)
	}
	r, _ := b.st.Request(ctx, old.ID)
	if r.State != store.StateApproved || r.TemplateVersion != 1 || jobs(old.ID) != 1 ||
		!strings.Contains(r.StateReason, "approved by manager: the v2 image breaks our agent") {
		t.Errorf("after approval: %s v%d %q, %d rebuild jobs", r.State, r.TemplateVersion, r.StateReason, jobs(old.ID))
	}

	// Rejected: the VM keeps its version, and the event says why.
	cur := b.running(t, "web-2", "small") // on v2
	got, err = b.st.RequestRebuild(ctx, cur.ID, 1, store.UserActor(b.dev))
	if err != nil || !got.Pending {
		t.Fatalf("developer to v1 again: %+v %v", got, err)
	}
	if _, err := b.st.DecideApproval(ctx, got.ApprovalID, b.other, false, "v1 has the CVE"); err != nil {
		t.Fatal(err)
	}
	if r, _ := b.st.Request(ctx, cur.ID); r.State != store.StateRunning || r.TemplateVersion != 2 || jobs(cur.ID) != 0 {
		t.Errorf("after rejection: %s v%d, %d rebuild jobs", r.State, r.TemplateVersion, jobs(cur.ID))
	}
	if n := countRows(t, b.st, `SELECT count(*) FROM events WHERE request_id = $1 AND kind = 'rebuild_rejected' AND reason LIKE '%v1 has the CVE%'`, cur.ID); n != 1 {
		t.Errorf("%d rejection events", n)
	}

	// The platform team rebuilds to an older version at once.
	got, err = b.st.RequestRebuild(ctx, cur.ID, 1, store.UserActor(platform))
	if err != nil || got.Pending || got.ToVersion != 1 {
		t.Errorf("platform to v1: %+v %v", got, err)
	}
	if r, _ := b.st.Request(ctx, cur.ID); r.State != store.StateApproved || r.TemplateVersion != 1 || jobs(cur.ID) != 1 {
		t.Errorf("after the platform's rebuild: %s v%d", r.State, r.TemplateVersion)
	}

	// The current version needs nobody.
	latest := b.running(t, "web-3", "small")
	if got, err := b.st.RequestRebuild(ctx, latest.ID, 0, store.UserActor(b.dev)); err != nil || got.Pending || got.ToVersion != 2 {
		t.Errorf("developer to the current version: %+v %v", got, err)
	}
}
