package store_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"paddock/internal/store"
)

// TestRequestsPinTheirVersion: a request keeps the version it was made from
// after the template changes; new requests take the new version; old
// versions stay readable and immutable.
func TestRequestsPinTheirVersion(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	first, err := b.submit(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	spec := testTemplate("ubuntu", true)
	spec.Sizes[0].Instancetype = "u1.medium"
	res, err := b.st.PublishTemplateChange(ctx, store.Publish{Spec: spec, Actor: store.UserActor(b.other), Note: "bigger small"})
	if err != nil || !res.Changed || res.Version != 2 || res.Previous != 1 || strings.Join(res.Fields, ",") != "sizes" {
		t.Fatalf("publish v2: %+v %v", res, err)
	}
	second, err := b.submit(t, func(n *store.NewRequest) { n.Name = "web-2" })
	if err != nil {
		t.Fatal(err)
	}
	first, _ = b.st.Request(ctx, first.ID)
	if first.TemplateVersion != 1 || second.TemplateVersion != 2 {
		t.Errorf("versions: first %d, second %d", first.TemplateVersion, second.TemplateVersion)
	}
	if first.VCPU != 1 || first.MemoryMiB != 2048 || second.MemoryMiB != 4096 {
		t.Errorf("resources: first %d/%d, second %d/%d", first.VCPU, first.MemoryMiB, second.VCPU, second.MemoryMiB)
	}
	v1, err := b.st.TemplateVersion(ctx, first.TemplateID, 1)
	if err != nil || v1.Spec.Sizes[0].Instancetype != "u1.small" {
		t.Errorf("v1: %+v %v", v1.Spec.Sizes, err)
	}
	vs, err := b.st.TemplateVersions(ctx, first.TemplateID)
	if err != nil || len(vs) != 2 || vs[0].Version != 2 || vs[0].CreatedBy != "manager" || vs[0].Note != "bigger small" || vs[1].CreatedBy != "" {
		t.Errorf("history: %+v %v", vs, err)
	}
	if _, err := b.st.Pool().Exec(ctx, `DELETE FROM template_versions WHERE version = 1`); err == nil {
		t.Error("a pinned version could be deleted")
	}
	usage, err := b.st.TemplateUsage(ctx, first.TemplateID)
	if err != nil || usage[1].VMs != 1 || usage[2].VMs != 1 {
		t.Errorf("usage: %+v %v", usage, err)
	}
	sums, err := b.st.TemplateSummaries(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range sums {
		if s.Name == "ubuntu" && (s.VMs != 2 || s.Outdated != 1 || s.Version != 2) {
			t.Errorf("summary: %+v", s)
		}
	}
	states, err := b.st.TemplateStates(ctx)
	if err != nil || states[first.TemplateID].Current != 2 {
		t.Errorf("states: %+v %v", states, err)
	}
	// Deleted VMs do not count.
	if err := b.st.RequestAction(ctx, first.ID, store.ActionDelete, store.UserActor(b.dev)); err != nil {
		t.Fatal(err)
	}
	if _, err := b.st.Transition(ctx, first.ID, store.StateDeleted, store.ActorCluster, "state", "gone", store.StateApproved); err != nil {
		t.Fatal(err)
	}
	usage, _ = b.st.TemplateUsage(ctx, first.TemplateID)
	if _, ok := usage[1]; ok {
		t.Errorf("usage counts a deleted VM: %+v", usage)
	}
}

func TestPublishChecks(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	actor := store.UserActor(b.other)
	// New refuses an existing name.
	_, err := b.st.PublishTemplateChange(ctx, store.Publish{Spec: testTemplate("ubuntu", true), Actor: actor, New: true})
	var verr *store.ValidationError
	if !errors.As(err, &verr) || !strings.Contains(verr.For("name"), "already exists") {
		t.Errorf("create over an existing name: %v", err)
	}
	// An edit from a stale version is refused.
	spec := testTemplate("ubuntu", true)
	spec.Description = "one"
	if _, err := b.st.PublishTemplateChange(ctx, store.Publish{Spec: spec, Actor: actor, Base: 1}); err != nil {
		t.Fatal(err)
	}
	spec.Description = "two"
	if _, err := b.st.PublishTemplateChange(ctx, store.Publish{Spec: spec, Actor: actor, Base: 1}); !errors.Is(err, store.ErrConflict) {
		t.Errorf("stale edit: %v", err)
	}
	// Invalid specs and notes name the field.
	bad := testTemplate("new", true)
	bad.MaxLeaseDays = 0
	_, err = b.st.PublishTemplateChange(ctx, store.Publish{Spec: bad, Actor: actor, Note: strings.Repeat("x", 501)})
	if !errors.As(err, &verr) || verr.For("name") == "" || verr.For("maxLeaseDays") == "" || verr.For("note") == "" {
		t.Errorf("invalid: %v", err)
	}
	// Every publish is audited; unchanged ones are not.
	if _, err := b.st.PublishTemplateChange(ctx, store.Publish{Spec: spec, Actor: actor}); err != nil {
		t.Fatal(err)
	}
	if n := countRows(t, b.st, `SELECT count(*) FROM audit_log WHERE action = 'template_change' AND target = 'template:ubuntu' AND actor = 'manager'`); n != 2 {
		t.Errorf("%d audit entries, want 2", n)
	}
}

func TestDeprecateRetireRestore(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	actor := store.UserActor(b.other)
	live, err := b.submit(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.st.RetireTemplate(ctx, "ubuntu", actor); !errors.Is(err, store.ErrConflict) {
		t.Errorf("retire before deprecating: %v", err)
	}
	var verr *store.ValidationError
	if err := b.st.DeprecateTemplate(ctx, "ubuntu", "  ", actor); !errors.As(err, &verr) || verr.For("note") == "" {
		t.Errorf("deprecate without a note: %v", err)
	}
	if err := b.st.DeprecateTemplate(ctx, "nope", "x", actor); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("deprecate a missing template: %v", err)
	}
	if err := b.st.DeprecateTemplate(ctx, "ubuntu", "use ubuntu-2604", actor); err != nil {
		t.Fatal(err)
	}
	// Hidden from new requests; the existing one keeps working.
	_, err = b.submit(t, func(n *store.NewRequest) { n.Name = "web-2" })
	if !errors.As(err, &verr) || !strings.Contains(verr.For("template"), "deprecated") {
		t.Errorf("request on a deprecated template: %v", err)
	}
	tpl, _ := b.st.TemplateByName(ctx, "ubuntu")
	if tpl.Status() != "deprecated" || tpl.DeprecationNote != "use ubuntu-2604" {
		t.Errorf("after deprecate: %s %q", tpl.Status(), tpl.DeprecationNote)
	}
	if err := b.st.RequestAction(ctx, live.ID, store.ActionStop, store.UserActor(b.dev)); err != nil && !errors.Is(err, store.ErrConflict) {
		t.Errorf("act on a VM of a deprecated template: %v", err)
	}
	if err := b.st.RetireTemplate(ctx, "ubuntu", actor); err != nil {
		t.Fatal(err)
	}
	ts, _ := b.st.Templates(ctx)
	for _, t2 := range ts {
		if t2.Name == "ubuntu" {
			t.Error("a retired template is listed")
		}
	}
	// Retired templates take no new version until restored.
	spec := testTemplate("ubuntu", true)
	spec.Description = "back"
	if _, err := b.st.PublishTemplateChange(ctx, store.Publish{Spec: spec, Actor: actor}); !errors.As(err, &verr) || !strings.Contains(verr.For("name"), "retired") {
		t.Errorf("publish to a retired template: %v", err)
	}
	if err := b.st.DeprecateTemplate(ctx, "ubuntu", "again", actor); !errors.Is(err, store.ErrConflict) {
		t.Errorf("deprecate a retired template: %v", err)
	}
	if err := b.st.RestoreTemplate(ctx, "ubuntu", actor); err != nil {
		t.Fatal(err)
	}
	if err := b.st.RestoreTemplate(ctx, "ubuntu", actor); !errors.Is(err, store.ErrConflict) {
		t.Errorf("restore an active template: %v", err)
	}
	if _, err := b.submit(t, func(n *store.NewRequest) { n.Name = "web-3" }); err != nil {
		t.Errorf("request after restore: %v", err)
	}
	if n := countRows(t, b.st, `SELECT count(*) FROM audit_log WHERE target = 'template:ubuntu' AND details->>'change' IN ('deprecate', 'retire', 'restore')`); n != 3 {
		t.Errorf("%d lifecycle audit entries, want 3", n)
	}
}

// TestApplyTemplatesIsAllOrNothing: a batch whose last template cannot be
// published leaves every template as it was; a dry run writes nothing and
// predicts what the real run does.
func TestApplyTemplatesIsAllOrNothing(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	actor := store.Actor{Name: "ci"}
	changed := testTemplate("gated", false)
	changed.Description = "changed"
	fresh := testTemplate("brand-new", true)
	same := testTemplate("ubuntu", true)
	if err := b.st.DeprecateTemplate(ctx, "ubuntu", "old", actor); err != nil {
		t.Fatal(err)
	}
	if err := b.st.RetireTemplate(ctx, "ubuntu", actor); err != nil {
		t.Fatal(err)
	}
	before := countRows(t, b.st, `SELECT count(*) FROM template_versions`)
	// ubuntu is retired: the batch fails and nothing of it is applied.
	_, err := b.st.ApplyTemplates(ctx, []store.TemplateSpec{changed, fresh, same}, actor, "", false)
	if err == nil || !strings.Contains(err.Error(), "ubuntu") {
		t.Fatalf("apply with a retired template: %v", err)
	}
	if n := countRows(t, b.st, `SELECT count(*) FROM template_versions`); n != before {
		t.Errorf("a failed apply wrote %d versions", n-before)
	}
	if n := countRows(t, b.st, `SELECT count(*) FROM templates WHERE name = 'brand-new'`); n != 0 {
		t.Error("a failed apply created a template")
	}
	if err := b.st.RestoreTemplate(ctx, "ubuntu", actor); err != nil {
		t.Fatal(err)
	}
	plan, err := b.st.ApplyTemplates(ctx, []store.TemplateSpec{changed, fresh, same}, actor, "", true)
	if err != nil {
		t.Fatal(err)
	}
	if n := countRows(t, b.st, `SELECT count(*) FROM template_versions`); n != before {
		t.Error("a dry run wrote versions")
	}
	done, err := b.st.ApplyTemplates(ctx, []store.TemplateSpec{changed, fresh, same}, actor, "from git", false)
	if err != nil {
		t.Fatal(err)
	}
	summary := func(rs []store.PublishResult) string {
		var s []string
		for _, r := range rs {
			s = append(s, r.Name+":"+map[bool]string{true: "changed", false: "same"}[r.Changed]+":"+string(rune('0'+r.Version)))
		}
		return strings.Join(s, " ")
	}
	if summary(plan) != "brand-new:changed:1 gated:changed:2 ubuntu:same:1" || summary(done) != summary(plan) {
		t.Errorf("plan %s, done %s", summary(plan), summary(done))
	}
	// Applying again changes nothing.
	again, err := b.st.ApplyTemplates(ctx, []store.TemplateSpec{changed, fresh, same}, actor, "", false)
	if err != nil || summary(again) != "brand-new:same:1 gated:same:2 ubuntu:same:1" {
		t.Errorf("second apply: %s %v", summary(again), err)
	}
	if _, err := b.st.ApplyTemplates(ctx, []store.TemplateSpec{fresh, fresh}, actor, "", true); err == nil {
		t.Error("the same template twice in one apply")
	}
}

// TestWithdrawVersion: a withdrawn version builds no VM — no rebuild (by
// anyone, approved or not) and no rollout pins to it — while VMs on it keep
// running; the current version and a rollout's target cannot be withdrawn;
// withdrawing and reinstating are audited with who and why.
func TestWithdrawVersion(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	platform := b.grUser(t, "platform", store.RolePlatform)
	actor := store.UserActor(platform)
	onV1 := b.running(t, "web-1", "small")
	spec := testTemplate("ubuntu", true)
	spec.Description = "v2"
	if _, _, err := b.st.PublishTemplate(ctx, spec, nil); err != nil {
		t.Fatal(err)
	}
	// Asked before the withdrawal, decided after it.
	asked, err := b.st.RequestRebuild(ctx, b.running(t, "web-2", "small").ID, 1, store.UserActor(b.dev))
	if err != nil || !asked.Pending {
		t.Fatalf("ask for v1: %+v %v", asked, err)
	}

	var verr *store.ValidationError
	if err := b.st.WithdrawVersion(ctx, "ubuntu", 1, " ", actor); !errors.As(err, &verr) || verr.For("note") == "" {
		t.Errorf("withdraw without a note: %v", err)
	}
	if err := b.st.WithdrawVersion(ctx, "ubuntu", 9, "x", actor); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("withdraw a missing version: %v", err)
	}
	if err := b.st.WithdrawVersion(ctx, "ubuntu", 2, "x", actor); !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "current version") {
		t.Errorf("withdraw the current version: %v", err)
	}
	const note = "its image has CVE-2026-1234"
	if err := b.st.WithdrawVersion(ctx, "ubuntu", 1, note, actor); err != nil {
		t.Fatal(err)
	}
	if err := b.st.WithdrawVersion(ctx, "ubuntu", 1, note, actor); !errors.Is(err, store.ErrConflict) {
		t.Errorf("withdraw twice: %v", err)
	}
	tpl, _ := b.st.TemplateByName(ctx, "ubuntu")
	tvs, err := b.st.TemplateVersions(ctx, tpl.ID)
	if err != nil || len(tvs) != 2 || tvs[0].Withdrawn() || !tvs[1].Withdrawn() || tvs[1].WithdrawnBy != "platform" || tvs[1].WithdrawnNote != note {
		t.Fatalf("versions: %+v %v", tvs, err)
	}

	// Refused to everyone, with why; the VM on it is untouched.
	for _, who := range []store.User{platform, b.dev} {
		_, err := b.st.RequestRebuild(ctx, onV1.ID, 1, store.UserActor(who))
		if msg := grFieldError(err, "version"); !strings.Contains(msg, "ubuntu v1 was withdrawn") || !strings.Contains(msg, note) {
			t.Errorf("%s rebuilding to v1: %v", who.Login, err)
		}
	}
	if r, _ := b.st.Request(ctx, onV1.ID); r.State != store.StateRunning || r.TemplateVersion != 1 {
		t.Errorf("VM on the withdrawn version: %s v%d", r.State, r.TemplateVersion)
	}
	if _, err := b.st.DecideApproval(ctx, asked.ApprovalID, b.other, true, ""); !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "withdrawn") {
		t.Errorf("approving a rebuild to the withdrawn version: %v", err)
	}
	_, err = b.st.StartRollout(ctx, store.NewRollout{Template: "ubuntu", Version: 1}, actor)
	if msg := grFieldError(err, "version"); !strings.Contains(msg, "withdrawn") {
		t.Errorf("rollout to v1: %v", err)
	}
	// New requests pin the current version, which is never withdrawn.
	if r, err := b.submit(t, func(n *store.NewRequest) { n.Name = "web-3" }); err != nil || r.TemplateVersion != 2 {
		t.Errorf("request after the withdrawal: v%d %v", r.TemplateVersion, err)
	}

	// The target of a rollout under way stays until the rollout is cancelled.
	id, err := b.st.StartRollout(ctx, store.NewRollout{Template: "ubuntu", Version: 2}, actor)
	if err != nil {
		t.Fatal(err)
	}
	spec.Description = "v3"
	if _, _, err := b.st.PublishTemplate(ctx, spec, nil); err != nil {
		t.Fatal(err)
	}
	if err := b.st.WithdrawVersion(ctx, "ubuntu", 2, "x", actor); !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "cancel it first") {
		t.Errorf("withdraw a rollout's target: %v", err)
	}
	if err := b.st.CancelRollout(ctx, id, actor); err != nil {
		t.Fatal(err)
	}
	if err := b.st.WithdrawVersion(ctx, "ubuntu", 2, "x", actor); err != nil {
		t.Errorf("withdraw after the rollout was cancelled: %v", err)
	}

	// Reinstated, v1 builds VMs again.
	if err := b.st.ReinstateVersion(ctx, "ubuntu", 1, actor); err != nil {
		t.Fatal(err)
	}
	if err := b.st.ReinstateVersion(ctx, "ubuntu", 1, actor); !errors.Is(err, store.ErrConflict) {
		t.Errorf("reinstate twice: %v", err)
	}
	if _, err := b.st.RequestRebuild(ctx, onV1.ID, 1, actor); err != nil {
		t.Errorf("platform rebuilding to the reinstated v1: %v", err)
	}
	es := b.audit(t, store.AuditFilter{})
	var changes []string
	for _, e := range es {
		if e.Target == "template:ubuntu" && e.Actor == "platform" {
			changes = append(changes, fmt.Sprintf("%v v%v", e.Details["change"], e.Details["version"]))
		}
	}
	slices.Sort(changes)
	if want := []string{"reinstate v1", "withdraw v1", "withdraw v2"}; !slices.Equal(changes, want) {
		t.Errorf("audit: %q, want %q", changes, want)
	}
}

// TestWithdrawnVersionBuildsNoMoreVMsForWhatWasPinnedBefore: a request
// that waited for approval while its version was withdrawn is not approved
// into a VM of it, and a pool on it does not grow (it may shrink).
func TestWithdrawnVersionBuildsNoMoreVMsForWhatWasPinnedBefore(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	actor := store.UserActor(b.grUser(t, "platform", store.RolePlatform))
	pending, err := b.submit(t, func(n *store.NewRequest) { n.Name, n.Template = "gated-1", "gated" })
	if err != nil || pending.State != store.StatePendingApproval {
		t.Fatalf("gated request: %s %v", pending.State, err)
	}
	pool, err := b.submit(t, func(n *store.NewRequest) { n.Name, n.Replicas = "pool-1", 2 })
	if err != nil {
		t.Fatal(err)
	}
	b.provisioned(t, pool)
	for _, name := range []string{"gated", "ubuntu"} {
		spec := testTemplate(name, name == "ubuntu")
		spec.Description = "v2"
		if _, _, err := b.st.PublishTemplate(ctx, spec, nil); err != nil {
			t.Fatal(err)
		}
		if err := b.st.WithdrawVersion(ctx, name, 1, "broken image", actor); err != nil {
			t.Fatal(err)
		}
	}

	a := b.grOpenApproval(t, pending.ID)
	if _, err := b.st.DecideApproval(ctx, a.ID, b.other, true, ""); !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "gated v1 was withdrawn") {
		t.Errorf("approving a request on a withdrawn version: %v", err)
	}
	if _, err := b.st.DecideApproval(ctx, a.ID, b.other, false, "v1 was withdrawn"); err != nil {
		t.Errorf("rejecting it: %v", err)
	}
	_, err = b.st.ScalePool(ctx, pool.ID, 3, store.UserActor(b.dev))
	if msg := grFieldError(err, "replicas"); !strings.Contains(msg, "ubuntu v1 was withdrawn") {
		t.Errorf("growing a pool on a withdrawn version: %v", err)
	}
	if sc, err := b.st.ScalePool(ctx, pool.ID, 1, store.UserActor(b.dev)); err != nil || sc.To != 1 {
		t.Errorf("shrinking it: %+v %v", sc, err)
	}
}

// TestTemplatesSpecsAreCachedCopies: the catalog's specs come from a cache
// of decoded versions, yet what a caller changes never reaches the next
// caller, and a newly published version shows its own spec at once.
func TestTemplatesSpecsAreCachedCopies(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	find := func() store.Template {
		t.Helper()
		ts, err := b.st.Templates(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, tpl := range ts {
			if tpl.Name == "ubuntu" {
				return tpl
			}
		}
		t.Fatalf("no ubuntu in %+v", ts)
		return store.Template{}
	}
	first := find()
	if first.Version != 1 || first.Spec.Sizes[0].Instancetype != "u1.small" || first.Spec.CloudInit == "" {
		t.Fatalf("first read: v%d %+v", first.Version, first.Spec)
	}
	// Scribble over everything the caller got, slices included.
	first.Spec.Sizes[0].Instancetype = "scribbled"
	first.Spec.Sizes = append(first.Spec.Sizes, store.Size{Name: "extra"})
	first.Spec.DisplayName = "scribbled"
	again := find()
	if again.Spec.Sizes[0].Instancetype != "u1.small" || len(again.Spec.Sizes) != 2 || again.Spec.DisplayName != "ubuntu" {
		t.Errorf("a caller's change reached the cache: %+v", again.Spec)
	}

	spec := testTemplate("ubuntu", true)
	spec.Sizes[0].Instancetype = "u1.medium"
	spec.Image = store.ImageSource{DataSource: &store.DataSourceRef{Namespace: "os-images", Name: "ubuntu"}}
	spec.RootDiskGiB = 20
	if _, err := b.st.PublishTemplateChange(ctx, store.Publish{Spec: spec, Actor: store.UserActor(b.other), Note: "v2"}); err != nil {
		t.Fatal(err)
	}
	second := find()
	if second.Version != 2 || second.Spec.Sizes[0].Instancetype != "u1.medium" || second.Spec.Image.DataSource == nil {
		t.Fatalf("after publishing v2: v%d %+v", second.Version, second.Spec)
	}
	second.Spec.Image.DataSource.Name = "scribbled"
	if third := find(); third.Spec.Image.DataSource.Name != "ubuntu" {
		t.Errorf("a caller's change to the data source reached the cache: %+v", third.Spec.Image)
	}
	// The pinned version still reads as it was published.
	v1, err := b.st.TemplateVersion(ctx, first.ID, 1)
	if err != nil || v1.Spec.Sizes[0].Instancetype != "u1.small" {
		t.Errorf("v1: %+v %v", v1.Spec, err)
	}
}
