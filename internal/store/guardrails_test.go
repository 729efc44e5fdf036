package store_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"paddock/internal/store"
	"paddock/internal/testdb"
)

func intp(n int) *int { return &n }

// grSetQuota sets the bundle team's quota, failing the test on error.
func (b bundle) grSetQuota(t *testing.T, q store.Quota) {
	t.Helper()
	q.TeamID = b.team.ID
	if err := b.st.SetTeamQuota(context.Background(), q, store.UserActor(b.other)); err != nil {
		t.Fatal(err)
	}
}

// grUser makes another user of role in the bundle's team (nil for managers).
func (b bundle) grUser(t *testing.T, login string, role store.Role) store.User {
	t.Helper()
	var team *int64
	if role != store.RoleManager {
		team = &b.team.ID
	}
	u, err := b.st.EnsureUser(context.Background(), login, login, role, team)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func grFieldError(err error, field string) string {
	var v *store.ValidationError
	if !errors.As(err, &v) {
		return ""
	}
	return v.For(field)
}

// grOpenApproval returns the open approval of a request.
func (b bundle) grOpenApproval(t *testing.T, requestID int64) store.Approval {
	t.Helper()
	as, err := b.st.ApprovalsOf(context.Background(), requestID)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range as {
		if a.Open() {
			return a
		}
	}
	t.Fatalf("request %d has no open approval (%+v)", requestID, as)
	return store.Approval{}
}

func TestApprovalPolicyDecide(t *testing.T) {
	t.Parallel()
	tpl := testTemplate("ubuntu", true)
	small, _ := tpl.Size("small")   // 1 vCPU, 2 GiB
	custom, _ := tpl.Size("custom") // 2 vCPU, 4 GiB
	quota := store.Quota{MemoryMiB: intp(32768)}
	gated := testTemplate("gated", false)
	cases := []struct {
		name string
		in   store.PolicyInput
		want string
	}{
		{"no quota, no rule", store.PolicyInput{Template: tpl, Size: small, LeaseDays: 7},
			"auto-approved: template allows auto-approval; lease 7 days ≤ maximum 14"},
		{"within quota and size limit", store.PolicyInput{Template: tpl, Size: small, LeaseDays: 7, Quota: quota,
			Rule: &store.ApprovalRule{AutoApprove: true, MaxSize: "custom"}},
			"auto-approved: within team quota; template allows auto-approval; size small ≤ limit custom; lease 7 days ≤ maximum 14"},
		{"size over limit", store.PolicyInput{Template: tpl, Size: custom, LeaseDays: 7, Quota: quota,
			Rule: &store.ApprovalRule{TeamName: "payments", AutoApprove: true, MaxSize: "small"}},
			"needs approval: size custom exceeds the team's auto-approve limit small"},
		{"limit named by a u1 size", store.PolicyInput{Template: tpl, Size: custom, LeaseDays: 7,
			Rule: &store.ApprovalRule{AutoApprove: true, MaxSize: "large"}},
			"auto-approved: template allows auto-approval; size custom ≤ limit large; lease 7 days ≤ maximum 14"},
		{"unknown limit", store.PolicyInput{Template: tpl, Size: small, LeaseDays: 7,
			Rule: &store.ApprovalRule{AutoApprove: true, MaxSize: "jumbo"}},
			`needs approval: the team's size limit "jumbo" is not a size of template ubuntu`},
		{"rule forbids auto-approval", store.PolicyInput{Template: tpl, Size: small, LeaseDays: 7,
			Rule: &store.ApprovalRule{TeamName: "payments", AutoApprove: false}},
			"needs approval: the approval rule for team payments, every template requires approval"},
		{"every blocker at once", store.PolicyInput{Template: gated, Size: custom, LeaseDays: 30,
			Rule: &store.ApprovalRule{AutoApprove: true, MaxSize: "small"}},
			"needs approval: template gated requires approval; size custom exceeds the team's auto-approve limit small; lease 30 days exceeds the template's maximum of 14"},
	}
	for _, c := range cases {
		if got := store.Decide(c.in).String(); got != c.want {
			t.Errorf("%s:\n got %q\nwant %q", c.name, got, c.want)
		}
	}
	// Size order: vCPU first, then memory.
	for _, c := range []struct {
		a, b store.Size
		le   bool
	}{
		{store.Size{CPU: 1, MemoryMiB: 8192}, store.Size{CPU: 2, MemoryMiB: 1024}, true},
		{store.Size{CPU: 2, MemoryMiB: 1024}, store.Size{CPU: 1, MemoryMiB: 8192}, false},
		{store.Size{CPU: 2, MemoryMiB: 2048}, store.Size{CPU: 2, MemoryMiB: 2048}, true},
		{store.Size{CPU: 2, MemoryMiB: 4096}, store.Size{CPU: 2, MemoryMiB: 2048}, false},
	} {
		if got := store.SizeAtMost(c.a, c.b); got != c.le {
			t.Errorf("SizeAtMost(%+v, %+v) = %v", c.a, c.b, got)
		}
	}
}

func TestQuotaRefusesOverQuotaNamingTheBlocker(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	b.grSetQuota(t, store.Quota{MemoryMiB: intp(5 * 1024)})
	for i := range 2 {
		if _, err := b.submit(t, func(n *store.NewRequest) { n.Name = fmt.Sprintf("vm-%d", i) }); err != nil {
			t.Fatal(err)
		}
	}
	_, err := b.submit(t, func(n *store.NewRequest) { n.Name = "vm-2" })
	msg := grFieldError(err, "quota")
	if msg != "exceeds the quota of team payments: memory 6 GiB of 5 GiB" {
		t.Fatalf("over quota: %v (quota message %q)", err, msg)
	}
	if n := countRows(t, b.st, `SELECT count(*) FROM requests`); n != 2 {
		t.Errorf("%d requests stored, want 2", n)
	}
	// Deleted VMs do not count; pending requests do not either.
	r, err := b.st.Requests(ctx, store.RequestFilter{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.st.Transition(ctx, r[0].ID, store.StateDeleted, store.ActorCluster, "state", "gone", store.StateApproved); err != nil {
		t.Fatal(err)
	}
	if _, err := b.submit(t, func(n *store.NewRequest) { n.Name = "vm-2" }); err != nil {
		t.Fatalf("after a delete: %v", err)
	}
	used, err := b.st.TeamUsage(ctx, b.team.ID)
	if err != nil {
		t.Fatal(err)
	}
	if used != (store.Usage{VCPU: 2, MemoryMiB: 4096, VMs: 2}) {
		t.Errorf("usage = %+v", used)
	}
	// A lifted limit lets it through.
	b.grSetQuota(t, store.Quota{VMs: intp(3)})
	if _, err := b.submit(t, func(n *store.NewRequest) { n.Name = "vm-3" }); err != nil {
		t.Fatal(err)
	}
	_, err = b.submit(t, func(n *store.NewRequest) { n.Name = "vm-4" })
	if msg := grFieldError(err, "quota"); msg != "exceeds the quota of team payments: VMs 4 of 3" {
		t.Errorf("VM count: %q", msg)
	}
	// The change is in the audit log.
	if n := countRows(t, b.st, `SELECT count(*) FROM audit_log WHERE action = 'quota_change'`); n != 2 {
		t.Errorf("%d quota changes audited", n)
	}
	if err := b.st.SetTeamQuota(ctx, store.Quota{TeamID: b.team.ID, VCPU: intp(-1)}, store.UserActor(b.other)); grFieldError(err, "vcpu") == "" {
		t.Errorf("negative quota: %v", err)
	}
}

func TestQuotaCountsDiskFromTheTemplate(t *testing.T) {
	b := setup(t)
	disky := testTemplate("disky", true)
	disky.Image = store.ImageSource{Registry: "docker://quay.io/containerdisks/fedora:41"}
	disky.RootDiskGiB = 30
	if _, _, err := b.st.PublishTemplate(context.Background(), disky, nil); err != nil {
		t.Fatal(err)
	}
	b.grSetQuota(t, store.Quota{DiskGiB: intp(50)})
	if _, err := b.submit(t, func(n *store.NewRequest) { n.Template = "disky" }); err != nil {
		t.Fatal(err)
	}
	// A VM without a disk of its own fits; a second disk does not.
	if _, err := b.submit(t, func(n *store.NewRequest) { n.Name = "nodisk" }); err != nil {
		t.Fatal(err)
	}
	_, err := b.submit(t, func(n *store.NewRequest) { n.Template = "disky"; n.Name = "web-2" })
	if msg := grFieldError(err, "quota"); msg != "exceeds the quota of team payments: disk 60 GiB of 50 GiB" {
		t.Errorf("disk: %v", err)
	}
}

// TestQuotaConcurrentSubmitsNeverExceed submits many requests from one team
// at once; the team_usage trigger makes exactly as many succeed as fit, and
// the ones refused at commit get the same message as the ones refused by
// the check before it.
func TestQuotaConcurrentSubmitsNeverExceed(t *testing.T) {
	b := setup(t)
	b.grSetQuota(t, store.Quota{MemoryMiB: intp(4 * 2048), VCPU: intp(100)})
	const n = 24
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, refused := 0, 0
	var other []error
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := b.submit(t, func(r *store.NewRequest) { r.Name = "race-" + strconv.Itoa(i) })
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case strings.Contains(grFieldError(err, "quota"), "memory 10 GiB of 8 GiB"):
				refused++
			default:
				other = append(other, err)
			}
		}()
	}
	wg.Wait()
	if len(other) > 0 {
		t.Fatalf("unexpected errors: %v", other)
	}
	if ok != 4 || refused != n-4 {
		t.Errorf("%d accepted, %d refused; want 4 and %d", ok, refused, n-4)
	}
	used, err := b.st.TeamUsage(context.Background(), b.team.ID)
	if err != nil {
		t.Fatal(err)
	}
	if used.MemoryMiB > 4*2048 || used.VMs != 4 {
		t.Errorf("usage %+v exceeds the quota", used)
	}
}

// recountUsage sums the team's usage over its requests, the way team_usage
// is defined, to check the row the trigger keeps.
func recountUsage(t *testing.T, st *store.Store, teamID int64) store.Usage {
	t.Helper()
	var u store.Usage
	err := st.Pool().QueryRow(context.Background(), `
		SELECT coalesce(sum(r.replicas), 0), coalesce(sum(r.vcpu * r.replicas), 0), coalesce(sum(r.memory_mib * r.replicas), 0),
		       coalesce(sum(coalesce((tv.spec->>'rootDiskGiB')::int, 0) * r.replicas), 0)
		FROM requests r JOIN template_versions tv ON tv.template_id = r.template_id AND tv.version = r.template_version
		WHERE r.team_id = $1 AND r.state IN ('approved', 'provisioning', 'running', 'stopped', 'failed', 'expired')`, teamID).
		Scan(&u.VMs, &u.VCPU, &u.MemoryMiB, &u.DiskGiB)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

// TestQuotaConcurrentSubmitScaleDeleteNeverExceed races submits, a pool
// growing and shrinking, and deletions in one team under a VM quota, while
// a reader watches the usage: it never exceeds the quota, and afterwards the
// kept usage equals the sum over the requests.
func TestQuotaConcurrentSubmitScaleDeleteNeverExceed(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	const limit = 8
	b.grSetQuota(t, store.Quota{VMs: intp(limit)})
	pool, err := b.submit(t, func(n *store.NewRequest) { n.Name = "pool"; n.Replicas = 2 })
	if err != nil {
		t.Fatal(err)
	}
	b.provisioned(t, pool)
	var doomed []store.Request
	for i := range 3 {
		r, err := b.submit(t, func(n *store.NewRequest) { n.Name = "old-" + strconv.Itoa(i) })
		if err != nil {
			t.Fatal(err)
		}
		doomed = append(doomed, r)
	}
	owner := store.UserActor(b.dev)
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		other   []error
		worst   int
		stopped = make(chan struct{})
	)
	fail := func(err error) {
		mu.Lock()
		other = append(other, err)
		mu.Unlock()
	}
	refused := func(err error, field string) bool {
		var qe *store.QuotaError
		return errors.As(err, &qe) || strings.Contains(grFieldError(err, field), "VMs ")
	}
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := b.submit(t, func(n *store.NewRequest) { n.Name = "race-" + strconv.Itoa(i) }); err != nil && !refused(err, "quota") {
				fail(err)
			}
		}()
	}
	for i := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := b.st.ScalePool(ctx, pool.ID, 1+i%3, owner); err != nil && !refused(err, "replicas") {
				fail(err)
			}
		}()
	}
	for _, r := range doomed {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := b.st.Transition(ctx, r.ID, store.StateDeleted, store.ActorProvisioner, "state", "deleted"); err != nil {
				fail(err)
			}
		}()
	}
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for {
			select {
			case <-stopped:
				return
			default:
			}
			u, err := b.st.TeamUsage(ctx, b.team.ID)
			if err != nil {
				fail(err)
				return
			}
			mu.Lock()
			worst = max(worst, u.VMs)
			mu.Unlock()
		}
	}()
	wg.Wait()
	close(stopped)
	<-watched
	if len(other) > 0 {
		t.Fatalf("unexpected errors: %v", other)
	}
	if worst > limit {
		t.Errorf("usage reached %d VMs, over the quota of %d", worst, limit)
	}
	kept, sum := b.usage(t), recountUsage(t, b.st, b.team.ID)
	if kept != sum {
		t.Errorf("kept usage %+v, sum over the requests %+v", kept, sum)
	}
	if kept.VMs > limit {
		t.Errorf("usage %d VMs is over the quota of %d", kept.VMs, limit)
	}
}

func TestQuotaRecheckedWhenApproving(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	b.grSetQuota(t, store.Quota{MemoryMiB: intp(4096)})
	var ids []int64
	for i := range 3 {
		r, err := b.submit(t, func(n *store.NewRequest) { n.Template = "gated"; n.Name = fmt.Sprintf("g-%d", i) })
		if err != nil {
			t.Fatal(err)
		}
		if r.State != store.StatePendingApproval {
			t.Fatalf("state %s", r.State)
		}
		ids = append(ids, r.ID)
	}
	for _, id := range ids[:2] {
		if _, err := b.st.DecideApproval(ctx, b.grOpenApproval(t, id).ID, b.other, true, ""); err != nil {
			t.Fatal(err)
		}
	}
	_, err := b.st.DecideApproval(ctx, b.grOpenApproval(t, ids[2]).ID, b.other, true, "")
	if !errors.Is(err, store.ErrConflict) || !strings.Contains(err.Error(), "memory 6 GiB of 4 GiB") {
		t.Fatalf("approval over quota: %v", err)
	}
	r, _ := b.st.Request(ctx, ids[2])
	if r.State != store.StatePendingApproval {
		t.Errorf("state after refused approval: %s", r.State)
	}
}

func TestApprovalApproveRejectAndRecord(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	r, err := b.submit(t, func(n *store.NewRequest) { n.Template = "gated" })
	if err != nil {
		t.Fatal(err)
	}
	q, err := b.st.ApprovalQueue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(q) != 1 || q[0].RequestID != r.ID || q[0].Kind != store.ApprovalRequest || q[0].Request.Name != "web-1" ||
		q[0].Reasons != "needs approval: template gated requires approval" || q[0].RequestedBy != "developer" {
		t.Fatalf("queue = %+v", q)
	}
	// Nobody decides their own request.
	if _, err := b.st.DecideApproval(ctx, q[0].ID, b.dev, true, ""); !errors.Is(err, store.ErrOwnRequest) {
		t.Errorf("self-approval: %v", err)
	}
	// A rejection needs a reason; an approval does not.
	if _, err := b.st.DecideApproval(ctx, q[0].ID, b.other, false, " "); grFieldError(err, "comment") == "" {
		t.Errorf("rejection without comment: %v", err)
	}
	a, err := b.st.DecideApproval(ctx, q[0].ID, b.other, true, "fine for the load test")
	if err != nil {
		t.Fatal(err)
	}
	if a.Verdict != store.VerdictApproved || a.DecidedBy != "manager" || a.Comment != "fine for the load test" || a.DecidedAt == nil {
		t.Errorf("approval = %+v", a)
	}
	r, _ = b.st.Request(ctx, r.ID)
	if r.State != store.StateApproved {
		t.Errorf("state = %s", r.State)
	}
	evs, _ := b.st.Events(ctx, r.ID)
	last := evs[len(evs)-1]
	if last.Kind != "approval" || last.Actor != "manager" || last.Reason != "approved by manager: fine for the load test" {
		t.Errorf("event = %+v", last)
	}
	id := strconv.FormatInt(r.ID, 10)
	if n := countRows(t, b.st, `SELECT count(*) FROM river_job WHERE kind = 'reconcile' AND args->>'request_id' = $1`, id); n != 1 {
		t.Errorf("%d reconcile jobs", n)
	}
	if n := countRows(t, b.st, `SELECT count(*) FROM audit_log WHERE action = 'approval' AND target = $1`, "request:"+id); n != 1 {
		t.Errorf("%d audit entries", n)
	}
	if n := countRows(t, b.st, `SELECT count(*) FROM notifications WHERE request_id = $1 AND kind IN ('approval_needed', 'approved')`, r.ID); n != 2 {
		t.Errorf("%d notifications", n)
	}
	if q, _ := b.st.ApprovalQueue(ctx); len(q) != 0 {
		t.Errorf("queue after approval: %+v", q)
	}

	// Rejection.
	r2, err := b.submit(t, func(n *store.NewRequest) { n.Template = "gated"; n.Name = "web-2" })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.st.DecideApproval(ctx, b.grOpenApproval(t, r2.ID).ID, b.other, false, "use the shared cluster"); err != nil {
		t.Fatal(err)
	}
	r2, _ = b.st.Request(ctx, r2.ID)
	if r2.State != store.StateRejected || r2.StateReason != "rejected by manager: use the shared cluster" {
		t.Errorf("rejected: %s %q", r2.State, r2.StateReason)
	}

	// Withdrawing a pending request closes its approval.
	r3, err := b.submit(t, func(n *store.NewRequest) { n.Template = "gated"; n.Name = "web-3" })
	if err != nil {
		t.Fatal(err)
	}
	ap := b.grOpenApproval(t, r3.ID)
	if err := b.st.RequestAction(ctx, r3.ID, store.ActionDelete, store.UserActor(b.dev)); err != nil {
		t.Fatal(err)
	}
	_, err = b.st.DecideApproval(ctx, ap.ID, b.other, true, "")
	var de *store.DecidedError
	if !errors.As(err, &de) || de.Verdict != store.VerdictWithdrawn || de.By != "developer" {
		t.Errorf("deciding a withdrawn request: %v", err)
	}
}

// TestApprovalConcurrentDecisionsExactlyOneWins has several approvers
// decide the same request at once: one wins, every other is told who did.
func TestApprovalConcurrentDecisionsExactlyOneWins(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	r, err := b.submit(t, func(n *store.NewRequest) { n.Template = "gated" })
	if err != nil {
		t.Fatal(err)
	}
	ap := b.grOpenApproval(t, r.ID)
	approvers := []store.User{b.other}
	for i := range 7 {
		role := store.RoleManager
		if i%2 == 1 {
			role = store.RolePlatform
		}
		approvers = append(approvers, b.grUser(t, fmt.Sprintf("approver-%d", i), role))
	}
	type result struct {
		who store.User
		err error
	}
	results := make(chan result, len(approvers))
	start := make(chan struct{})
	for i, u := range approvers {
		go func() {
			<-start
			_, err := b.st.DecideApproval(ctx, ap.ID, u, i%2 == 0, "decided by "+u.Login)
			results <- result{u, err}
		}()
	}
	close(start)
	var winners []store.User
	var losers []*store.DecidedError
	for range approvers {
		res := <-results
		var de *store.DecidedError
		switch {
		case res.err == nil:
			winners = append(winners, res.who)
		case errors.As(res.err, &de) && errors.Is(res.err, store.ErrConflict):
			losers = append(losers, de)
		default:
			t.Errorf("%s: %v", res.who.Login, res.err)
		}
	}
	if len(winners) != 1 || len(losers) != len(approvers)-1 {
		t.Fatalf("%d winners, %d losers", len(winners), len(losers))
	}
	for _, l := range losers {
		if l.By != winners[0].Login || !strings.HasPrefix(l.Error(), "conflict: already ") || !strings.Contains(l.Error(), " by "+winners[0].Login+" at ") {
			t.Errorf("loser told %q, winner %s", l.Error(), winners[0].Login)
		}
	}
	if n := countRows(t, b.st, `SELECT count(*) FROM events WHERE request_id = $1 AND kind = 'approval'`, r.ID); n != 1 {
		t.Errorf("%d approval events", n)
	}
	if n := countRows(t, b.st, `SELECT count(*) FROM river_job WHERE kind = 'reconcile'`); n > 1 {
		t.Errorf("%d reconcile jobs", n)
	}
}

func TestApprovalRulesMostSpecificApplies(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	actor := store.UserActor(b.other)
	set := func(in store.RuleInput) {
		t.Helper()
		if err := b.st.SetApprovalRule(ctx, in, actor); err != nil {
			t.Fatal(err)
		}
	}
	no := false
	set(store.RuleInput{MaxSize: "small"})
	i := 0
	decision := func(size string) string {
		t.Helper()
		i++
		r, err := b.submit(t, func(n *store.NewRequest) { n.Size = size; n.Name = "r-" + strconv.Itoa(i) })
		if err != nil {
			t.Fatal(err)
		}
		return r.Decision
	}
	if d := decision("custom"); d != "needs approval: size custom exceeds the team's auto-approve limit small" {
		t.Errorf("default rule: %q", d)
	}
	set(store.RuleInput{Team: "payments", MaxSize: "custom"})
	if d := decision("custom"); d != "auto-approved: template allows auto-approval; size custom ≤ limit custom; lease 7 days ≤ maximum 14" {
		t.Errorf("team rule: %q", d)
	}
	set(store.RuleInput{Team: "payments", Template: "ubuntu", AutoApprove: &no})
	if d := decision("small"); d != "needs approval: the approval rule for team payments, template ubuntu requires approval" {
		t.Errorf("team and template rule: %q", d)
	}
	// Updating a rule replaces it; bad names are named.
	set(store.RuleInput{Team: "payments", Template: "ubuntu", MaxSize: "small"})
	rules, err := b.st.ApprovalRules(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rules) != 3 || rules[0].Scope() != "every team, every template" || rules[2].Scope() != "team payments, template ubuntu" ||
		!rules[2].AutoApprove || rules[2].UpdatedBy != "manager" {
		t.Errorf("rules = %+v", rules)
	}
	err = b.st.SetApprovalRule(ctx, store.RuleInput{Team: "nope", Template: "ubuntu", MaxSize: "huge"}, actor)
	if grFieldError(err, "team") == "" || !strings.Contains(grFieldError(err, "maxSize"), "small, custom") {
		t.Errorf("bad rule: %v", err)
	}
	if err := b.st.DeleteApprovalRule(ctx, rules[2].ID, actor); err != nil {
		t.Fatal(err)
	}
	if n := countRows(t, b.st, `SELECT count(*) FROM audit_log WHERE action = 'approval_rule_change'`); n != 5 {
		t.Errorf("%d rule changes audited, want 5", n)
	}
}

func TestApprovalRulesFromYAML(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	actor := store.Actor{Name: "ci"}
	if err := b.st.SetApprovalRule(ctx, store.RuleInput{Template: "gated", MaxSize: "small"}, actor); err != nil {
		t.Fatal(err)
	}
	rules, err := store.ParseApprovalRulesYAML("rules.yaml", []byte(`
rules:
  - maxSize: custom
  - team: payments
    template: ubuntu
    autoApprove: false
`))
	if err != nil {
		t.Fatal(err)
	}
	dry, err := b.st.ApplyApprovalRules(ctx, rules, true, true, actor)
	if err != nil {
		t.Fatal(err)
	}
	want := "every team, every template: created; team payments, template ubuntu: created; every team, template gated: deleted"
	if got := grChanges(dry); got != want {
		t.Errorf("dry run: %s", got)
	}
	if n := countRows(t, b.st, `SELECT count(*) FROM approval_rules`); n != 1 {
		t.Errorf("dry run wrote: %d rules", n)
	}
	if _, err := b.st.ApplyApprovalRules(ctx, rules, true, false, actor); err != nil {
		t.Fatal(err)
	}
	again, err := b.st.ApplyApprovalRules(ctx, rules, true, false, actor)
	if err != nil || grChanges(again) != "every team, every template: unchanged; team payments, template ubuntu: unchanged" {
		t.Errorf("second apply: %s %v", grChanges(again), err)
	}
	all, _ := b.st.ApprovalRules(ctx)
	out, err := store.ApprovalRulesYAML(all)
	if err != nil {
		t.Fatal(err)
	}
	back, err := store.ParseApprovalRulesYAML("export.yaml", out)
	if err != nil || len(back) != 2 {
		t.Errorf("export does not read back: %v\n%s", err, out)
	}
	// Problems name the rule and field; nothing is applied.
	if _, err := store.ParseApprovalRulesYAML("bad.yaml", []byte("rules:\n  - colour: red\n")); err == nil || !strings.Contains(err.Error(), "bad.yaml") {
		t.Errorf("unknown field: %v", err)
	}
	bad := []store.RuleInput{{Team: "payments"}, {Team: "ghosts"}}
	if _, err := b.st.ApplyApprovalRules(ctx, bad, false, false, actor); grFieldError(err, "rules[1].team") == "" {
		t.Errorf("bad team: %v", err)
	}
	if n := countRows(t, b.st, `SELECT count(*) FROM approval_rules`); n != 2 {
		t.Errorf("a failed apply changed rules: %d", n)
	}
}

func grChanges(cs []store.RuleChange) string {
	parts := make([]string, len(cs))
	for i, c := range cs {
		parts[i] = c.Scope + ": " + c.Change
	}
	return strings.Join(parts, "; ")
}

// grExpiry moves a request's lease end (tests only).
func (b bundle) grExpiry(t *testing.T, id int64, at time.Time) {
	t.Helper()
	if _, err := b.st.Pool().Exec(context.Background(), `UPDATE requests SET expires_at = $2 WHERE id = $1`, id, at); err != nil {
		t.Fatal(err)
	}
}

func TestLeaseExtendWithinAndBeyondPolicy(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	now := time.Now()
	r, err := b.submit(t, nil) // ubuntu: maximum lease 14 days
	if err != nil {
		t.Fatal(err)
	}
	b.grExpiry(t, r.ID, now.Add(7*24*time.Hour))
	ext, err := b.st.ExtendLease(ctx, r.ID, 5, b.dev, now)
	if err != nil || !ext.Extended || !ext.ExpiresAt.Equal(now.Add(12*24*time.Hour).Truncate(time.Microsecond)) {
		t.Fatalf("within policy: %+v %v", ext, err)
	}
	evs, _ := b.st.Events(ctx, r.ID)
	if e := evs[len(evs)-1]; e.Kind != "lease_extended" || !strings.HasPrefix(e.Reason, "lease extended by 5 days to ") {
		t.Errorf("event %+v", e)
	}
	// Beyond the template's maximum from now: an approval, lease unchanged.
	ext, err = b.st.ExtendLease(ctx, r.ID, 5, b.dev, now)
	if err != nil || ext.Extended || ext.ApprovalID == 0 || !strings.Contains(ext.Reason, "maximum lease of 14 days") {
		t.Fatalf("beyond policy: %+v %v", ext, err)
	}
	if _, err := b.st.ExtendLease(ctx, r.ID, 5, b.dev, now); !errors.Is(err, store.ErrConflict) {
		t.Errorf("second extension while one waits: %v", err)
	}
	q, _ := b.st.ApprovalQueue(ctx)
	if len(q) != 1 || q[0].Kind != store.ApprovalExtension || q[0].ExtendDays != 5 {
		t.Fatalf("queue = %+v", q)
	}
	before, _ := b.st.Request(ctx, r.ID)
	if _, err := b.st.DecideApproval(ctx, q[0].ID, b.other, true, "ok"); err != nil {
		t.Fatal(err)
	}
	after, _ := b.st.Request(ctx, r.ID)
	if got := after.ExpiresAt.Sub(before.ExpiresAt); got != 5*24*time.Hour {
		t.Errorf("approved extension moved the lease by %s", got)
	}
	if _, err := b.st.ExtendLease(ctx, r.ID, 0, b.dev, now); grFieldError(err, "days") == "" {
		t.Errorf("0 days: %v", err)
	}
}

func TestLeaseSweepWarnsExpiresAndDeletesOnce(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	r, err := b.submit(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Give the request a VM, as the provisioner would.
	if err := testdb.Provision(ctx, b.st, r.ID, func(r store.Request) (store.VM, error) {
		return store.VM{Namespace: "payments", Name: "web-1"}, nil
	}); err != nil {
		t.Fatal(err)
	}
	end := time.Date(2030, 1, 10, 12, 0, 0, 0, time.UTC)
	b.grExpiry(t, r.ID, end)
	const grace = 72 * time.Hour
	sweep := func(at time.Time) store.LeaseSweep {
		t.Helper()
		sw, err := b.st.SweepLeases(ctx, at, grace)
		if err != nil {
			t.Fatal(err)
		}
		return sw
	}
	kinds := func() []string {
		evs, _ := b.st.Events(ctx, r.ID)
		var ks []string
		for _, e := range evs {
			if strings.HasPrefix(e.Kind, "lease") {
				ks = append(ks, e.Kind)
			}
		}
		return ks
	}
	steps := []struct {
		at   time.Time
		want store.LeaseSweep
	}{
		{end.Add(-96 * time.Hour), store.LeaseSweep{}},
		{end.Add(-71 * time.Hour), store.LeaseSweep{Warned: 1}},
		{end.Add(-70 * time.Hour), store.LeaseSweep{}},
		{end.Add(-23 * time.Hour), store.LeaseSweep{Warned: 1}},
		{end.Add(-22 * time.Hour), store.LeaseSweep{}},
		{end, store.LeaseSweep{Expired: 1}},
		{end.Add(time.Hour), store.LeaseSweep{}},
		{end.Add(grace), store.LeaseSweep{Deleted: 1}},
		{end.Add(grace + time.Hour), store.LeaseSweep{}},
	}
	for _, s := range steps {
		if got := sweep(s.at); got != s.want {
			t.Errorf("at end%+v: %+v, want %+v", s.at.Sub(end), got, s.want)
		}
	}
	if got := strings.Join(kinds(), ","); got != "lease_warning,lease_warning,lease_expired,lease_delete" {
		t.Errorf("events: %s", got)
	}
	r, _ = b.st.Request(ctx, r.ID)
	if r.State != store.StateExpired || r.Desired != "deleted" {
		t.Errorf("after grace: %s, desired %s", r.State, r.Desired)
	}
	// Two changes of desired state (stop at expiry, delete after the grace
	// period), carried out by the request's one reconcile job.
	id := strconv.FormatInt(r.ID, 10)
	if n := countRows(t, b.st, `SELECT count(*) FROM river_job WHERE kind = 'reconcile' AND args->>'request_id' = $1`, id); n != 1 || r.Generation != 2 {
		t.Errorf("%d reconcile jobs, generation %d, want 1 and 2", n, r.Generation)
	}
	for kind, want := range map[string]int{"lease_expiring": 2, "vm_expired": 1} {
		if n := countRows(t, b.st, `SELECT count(*) FROM notifications WHERE request_id = $1 AND kind = $2`, r.ID, kind); n != want {
			t.Errorf("%d %s notifications", n, kind)
		}
	}
	if _, err := b.st.ExtendLease(ctx, r.ID, 3, b.dev, end.Add(grace+time.Hour)); !errors.Is(err, store.ErrConflict) {
		t.Errorf("extending a VM being deleted: %v", err)
	}
}

func TestLeaseExtendingAnExpiredVMBringsItBack(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	r, err := b.submit(t, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := testdb.Provision(ctx, b.st, r.ID, func(r store.Request) (store.VM, error) {
		return store.VM{Namespace: "payments", Name: "web-1"}, nil
	}); err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	b.grExpiry(t, r.ID, now.Add(-time.Minute))
	if sw, err := b.st.SweepLeases(ctx, now, time.Hour); err != nil || sw.Expired != 1 {
		t.Fatalf("sweep: %+v %v", sw, err)
	}
	// The cluster reports the VM stopped: it stays expired.
	if _, err := b.st.Observe(ctx, r.ID, store.Observation{Status: "Stopped", State: store.StateStopped,
		Namespace: "payments", Name: "web-1"}); err != nil {
		t.Fatal(err)
	}
	r, _ = b.st.Request(ctx, r.ID)
	if r.State != store.StateExpired || r.Desired != "stopped" || store.ActionAllowed(store.ActionStart, r.State) {
		t.Fatalf("expired: %s desired %s", r.State, r.Desired)
	}
	ext, err := b.st.ExtendLease(ctx, r.ID, 7, b.dev, now)
	if err != nil || !ext.Extended {
		t.Fatalf("extend: %+v %v", ext, err)
	}
	r, _ = b.st.Request(ctx, r.ID)
	if r.State != store.StateStopped || r.Desired != "running" || !r.ExpiresAt.After(now.Add(6*24*time.Hour)) {
		t.Errorf("after extension: %s desired %s expires %s", r.State, r.Desired, r.ExpiresAt)
	}
	if n := countRows(t, b.st, `SELECT count(*) FROM river_job WHERE kind = 'reconcile'`); n != 1 || r.Generation != 2 {
		t.Errorf("%d reconcile jobs, generation %d (stop at expiry, start on extension)", n, r.Generation)
	}
	// New expiry, new reminders: the sweep warns again for it.
	if sw, err := b.st.SweepLeases(ctx, r.ExpiresAt.Add(-time.Hour), time.Hour); err != nil || sw.Warned != 1 {
		t.Errorf("reminder for the new expiry: %+v %v", sw, err)
	}
}
