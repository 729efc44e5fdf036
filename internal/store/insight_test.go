package store_test

import (
	"context"
	"math"
	"testing"
	"time"

	"paddock/internal/store"
)

// ev writes one event of request id at a chosen time.
func (h hist) ev(t *testing.T, id int64, at time.Time, actor, kind string, from, to store.State, reason string) {
	t.Helper()
	_, err := h.st.Pool().Exec(context.Background(), `INSERT INTO events (request_id, at, actor, kind, from_state, to_state, reason)
		VALUES ($1, $2, $3, $4, $5, $6, $7)`, id, at, actor, kind, from, to, reason)
	if err != nil {
		t.Fatal(err)
	}
}

// ts is a time in March 2026 (UTC): ts(10, 9, 30, 0) is the 10th at 09:30:00.
func ts(day, h, m, s int) time.Time { return time.Date(2026, 3, day, h, m, s, 0, time.UTC) }

const (
	pending  = store.StatePendingApproval
	approved = store.StateApproved
	prov     = store.StateProvisioning
	running  = store.StateRunning
	stopped  = store.StateStopped
	failed   = store.StateFailed
	rejected = store.StateRejected
	deleted  = store.StateDeleted
)

// autoStart writes submitted, policy approval, VM created and running.
func (h hist) autoStart(t *testing.T, id int64, created time.Time, lead time.Duration) {
	h.ev(t, id, created, "dev", "submitted", "", pending, "")
	h.ev(t, id, created.Add(10*time.Millisecond), "policy", "decision", pending, approved, "auto-approved")
	h.ev(t, id, created.Add(2*time.Second), "provisioner", "vm_created", approved, prov, "")
	if lead > 0 {
		h.ev(t, id, created.Add(lead), "cluster", "state", prov, running, "")
	}
}

func near(got, want float64) bool { return math.Abs(got-want) < 1e-6*math.Max(1, math.Abs(want)) }

func secs(d time.Duration) float64 { return d.Seconds() }

// The refresh time: Wednesday 18 March 2026, 12:00 UTC. This week (W0)
// started on Monday the 16th; the week before (W1) on the 9th.
var (
	refreshAt = ts(18, 12, 0, 0)
	w0        = ts(16, 0, 0, 0)
	w1        = ts(9, 0, 0, 0)
)

// insightFixture writes seven requests whose statistics are worked out by
// hand in the comments (seconds; p50 and p90 interpolate like
// percentile_cont: position p·(n-1) in the sorted values).
func insightFixture(t *testing.T, h hist) (r6, r7 int64) {
	mk := func(team store.Team, user store.User, tpl store.Template, name string, created time.Time, vcpu, mem int) int64 {
		return h.insert(t, row{team: team, user: user, tpl: tpl, name: name, created: created, vcpu: vcpu, memMiB: mem, state: running})
	}
	// W1, payments, ubuntu: lead 60 s; ran 10:01:00–12:00:00 (7140 s) with 2 vCPU, 4 GiB.
	r1 := mk(h.team, h.dev, h.ubuntu, "r1", ts(10, 10, 0, 0), 2, 4096)
	h.autoStart(t, r1, ts(10, 10, 0, 0), time.Minute)
	h.ev(t, r1, ts(10, 11, 59, 50), "dev", "action", running, running, "stop requested")
	h.ev(t, r1, ts(10, 12, 0, 0), "cluster", "state", running, stopped, "")
	h.ev(t, r1, ts(10, 12, 30, 0), "provisioner", "state", stopped, deleted, "")
	// W1, payments, gated: approved by a person after 2 h (wait 7200 s),
	// running at 11:05 (lead 7500 s), still running: 1 vCPU, 2 GiB.
	r2 := mk(h.team, h.dev, h.gated, "r2", ts(10, 9, 0, 0), 1, 2048)
	h.ev(t, r2, ts(10, 9, 0, 0), "dev", "submitted", "", pending, "")
	h.ev(t, r2, ts(10, 9, 0, 0).Add(10*time.Millisecond), "policy", "decision", pending, pending, "needs approval")
	h.ev(t, r2, ts(10, 11, 0, 0), "manager", "approval", pending, approved, "approved: fine")
	h.ev(t, r2, ts(10, 11, 0, 1), "provisioner", "vm_created", approved, prov, "")
	h.ev(t, r2, ts(10, 11, 5, 0), "cluster", "state", prov, running, "")
	// W1, billing, ubuntu: failed before running.
	r3 := mk(h.billing, h.biller, h.ubuntu, "r3", ts(11, 8, 0, 0), 1, 2048)
	h.autoStart(t, r3, ts(11, 8, 0, 0), 0)
	h.ev(t, r3, ts(11, 8, 3, 0), "cluster", "state", prov, failed,
		"The VM's disk image could not be pulled. The image named by the template may not exist.")
	// W1, billing, gated: rejected by a person after 1.5 h (wait 5400 s).
	r4 := mk(h.billing, h.biller, h.gated, "r4", ts(12, 15, 0, 0), 1, 2048)
	h.ev(t, r4, ts(12, 15, 0, 0), "biller", "submitted", "", pending, "")
	h.ev(t, r4, ts(12, 15, 0, 0).Add(10*time.Millisecond), "policy", "decision", pending, pending, "needs approval")
	h.ev(t, r4, ts(12, 16, 30, 0), "manager", "approval", pending, rejected, "rejected: no budget")
	// W1, billing, ubuntu: lead 120 s, ran 24 h in W1, started again in W0
	// at 08:00:40 and still running: 4 vCPU, 8 GiB.
	r5 := mk(h.billing, h.biller, h.ubuntu, "r5", ts(12, 10, 0, 0), 4, 8192)
	h.autoStart(t, r5, ts(12, 10, 0, 0), 2*time.Minute)
	h.ev(t, r5, ts(13, 10, 2, 0), "cluster", "state", running, stopped, "")
	h.ev(t, r5, ts(16, 8, 0, 0), "biller", "action", stopped, stopped, "start requested")
	h.ev(t, r5, ts(16, 8, 0, 40), "cluster", "state", stopped, running, "")
	// W0, payments, ubuntu: lead 30 s, still running: 1 vCPU, 1 GiB.
	r6 = mk(h.team, h.dev, h.ubuntu, "r6", ts(17, 9, 0, 0), 1, 1024)
	h.autoStart(t, r6, ts(17, 9, 0, 0), 30*time.Second)
	// W0, payments, gated: waiting for a person.
	r7 = mk(h.team, h.dev, h.gated, "r7", ts(17, 10, 0, 0), 1, 2048)
	h.ev(t, r7, ts(17, 10, 0, 0), "dev", "submitted", "", pending, "")
	h.ev(t, r7, ts(17, 10, 0, 0).Add(10*time.Millisecond), "policy", "decision", pending, pending, "needs approval")
	return r6, r7
}

func checkDur(t *testing.T, what string, got store.Durations, n int, p50, p90, maxS float64) {
	t.Helper()
	if got.N != n || !near(secs(got.P50), p50) || !near(secs(got.P90), p90) || !near(secs(got.Max), maxS) {
		t.Errorf("%s: got n=%d p50=%v p90=%v max=%v, want n=%d p50=%vs p90=%vs max=%vs",
			what, got.N, got.P50, got.P90, got.Max, n, p50, p90, maxS)
	}
}

func checkUsage(t *testing.T, what string, got store.Showback, active int, vcpuH, memH float64) {
	t.Helper()
	if got.ActiveVMs != active || !near(got.VCPUHours, vcpuH) || !near(got.MemoryGiBHours, memH) {
		t.Errorf("%s: got %d VMs %v vCPU-h %v GiB-h, want %d VMs %v vCPU-h %v GiB-h",
			what, got.ActiveVMs, got.VCPUHours, got.MemoryGiBHours, active, vcpuH, memH)
	}
}

func TestInsightAgainstHandComputedValues(t *testing.T) {
	h := setupHistory(t)
	ctx := context.Background()
	r6, r7 := insightFixture(t, h)
	res, err := h.st.RefreshInsight(ctx, refreshAt)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 7 || !res.Periods || res.Skipped {
		t.Errorf("refresh: %+v", res)
	}
	in, err := h.st.Insight(ctx, store.InsightQuery{Weeks: 4}, refreshAt)
	if err != nil {
		t.Fatal(err)
	}
	if !in.AsOf.Equal(refreshAt) {
		t.Errorf("as of %v", in.AsOf)
	}
	if len(in.Weeks) != 4 || !in.Weeks[3].Week.Equal(w0) || !in.Weeks[2].Week.Equal(w1) || in.Weeks[0].Submitted != 0 {
		t.Fatalf("weeks: %+v", in.Weeks)
	}
	// W1: requests r1–r5.
	wk1 := in.Weeks[2]
	if wk1.Submitted != 5 || wk1.AutoApproved != 3 || wk1.Approved != 1 || wk1.Rejected != 1 || wk1.Failed != 1 ||
		wk1.ReachedRunning != 3 || !near(wk1.AutoShare(), 0.6) {
		t.Errorf("W1 counts: %+v", wk1.RequestStats)
	}
	// Lead 60, 120, 7500: p50 120; p90 at 1.8 → 120 + 0.8·7380 = 6024.
	checkDur(t, "W1 lead", wk1.Lead, 3, 120, 6024, 7500)
	// Wait 5400, 7200: p50 6300; p90 at 0.9 → 5400 + 0.9·1800 = 7020.
	checkDur(t, "W1 wait", wk1.Wait, 2, 6300, 7020, 7200)
	// Showback W1: r1 7140 s × 2 vCPU, × 4 GiB; r2 from the 10th 11:05 to the
	// 16th 00:00 = 12 h 55 min + 5 days = 132 h 55 min × 1 vCPU, × 2 GiB; r5 24 h × 4 vCPU, × 8 GiB.
	r2h := 132 + 55.0/60
	checkUsage(t, "W1 usage", wk1.Showback, 3, 7140.0/3600*2+r2h+24*4, 7140.0/3600*4+r2h*2+24*8)
	// W0 up to the refresh: r2 60 h; r5 from 08:00:40 on the 16th = 51 h 59 min
	// 20 s × 4, × 8; r6 from 09:00:30 on the 17th = 26 h 59 min 30 s × 1, × 1.
	wk0 := in.Weeks[3]
	r5h, r6h := 51+59.0/60+20.0/3600, 26+59.0/60+30.0/3600
	checkUsage(t, "W0 usage", wk0.Showback, 3, 60+r5h*4+r6h, 120+r5h*8+r6h)
	if wk0.Submitted != 2 || wk0.AutoApproved != 1 || wk0.ReachedRunning != 1 {
		t.Errorf("W0 counts: %+v", wk0.RequestStats)
	}
	checkDur(t, "W0 lead", wk0.Lead, 1, 30, 30, 30)
	checkDur(t, "W0 wait", wk0.Wait, 0, 0, 0, 0)

	// The period: all seven. Lead 30, 60, 120, 7500: p50 90; p90 at 2.7 →
	// 120 + 0.7·7380 = 5286.
	if in.Total.Submitted != 7 || in.Total.AutoApproved != 4 || in.Total.Failed != 1 {
		t.Errorf("period counts: %+v", in.Total.RequestStats)
	}
	checkDur(t, "period lead", in.Total.Lead, 4, 90, 5286, 7500)
	checkUsage(t, "period usage", in.Total.Showback, 3, wk1.VCPUHours+wk0.VCPUHours, wk1.MemoryGiBHours+wk0.MemoryGiBHours)
	if len(in.Failures) != 1 || in.Failures[0] != (store.FailureCount{Reason: "The VM's disk image could not be pulled", Count: 1}) {
		t.Errorf("failures: %+v", in.Failures)
	}
	// Per team, by name: billing (r3–r5) lead 120; payments (r1, r2, r6, r7)
	// lead 30, 60, 7500: p50 60, p90 at 1.8 → 60 + 0.8·7440 = 6012.
	if len(in.ByTeam) != 2 || in.ByTeam[0].Name != "billing" || in.ByTeam[1].Name != "payments" {
		t.Fatalf("by team: %+v", in.ByTeam)
	}
	checkDur(t, "billing lead", in.ByTeam[0].Lead, 1, 120, 120, 120)
	checkDur(t, "payments lead", in.ByTeam[1].Lead, 3, 60, 6012, 7500)
	if in.ByTeam[1].Submitted != 4 || in.ByTeam[0].Rejected != 1 {
		t.Errorf("by team counts: %+v", in.ByTeam)
	}
	// Team showback: payments r1 + r2 (W1 and W0) + r6; billing r5.
	checkUsage(t, "payments usage", in.ByTeam[1].Showback, 2, 7140.0/3600*2+r2h+60+r6h, 7140.0/3600*4+r2h*2+120+r6h)
	checkUsage(t, "billing usage", in.ByTeam[0].Showback, 1, 24*4+r5h*4, 24*8+r5h*8)
	// Per template: gated (r2, r4, r7) lead 7500, wait 5400, 7200; ubuntu
	// (r1, r3, r5, r6) lead 30, 60, 120: p50 60, p90 at 1.8 → 60 + 0.8·60 = 108.
	if len(in.ByTemplate) != 2 || in.ByTemplate[0].Name != "gated" || in.ByTemplate[1].Name != "ubuntu" {
		t.Fatalf("by template: %+v", in.ByTemplate)
	}
	checkDur(t, "gated wait", in.ByTemplate[0].Wait, 2, 6300, 7020, 7200)
	checkDur(t, "ubuntu lead", in.ByTemplate[1].Lead, 3, 60, 108, 120)
	// Showback per team, most vCPU-hours first, week by week.
	if len(in.Showback) != 2 || in.Showback[0].TeamName != "billing" || len(in.Showback[0].Weeks) != 4 {
		t.Fatalf("showback: %+v", in.Showback)
	}
	checkUsage(t, "billing W0", in.Showback[0].Weeks[3], 1, r5h*4, r5h*8)

	// One team's view: W1 payments lead 60, 7500 → p50 3780, p90 6756.
	pay, err := h.st.Insight(ctx, store.InsightQuery{Weeks: 4, TeamID: h.team.ID}, refreshAt)
	if err != nil {
		t.Fatal(err)
	}
	checkDur(t, "payments W1 lead", pay.Weeks[2].Lead, 2, 3780, 6756, 7500)
	if len(pay.ByTeam) != 0 || len(pay.ByTemplate) != 2 || len(pay.Showback) != 1 || pay.Total.Submitted != 4 || len(pay.Failures) != 0 {
		t.Errorf("payments view: %+v", pay)
	}
	// One template and one team.
	pg, err := h.st.Insight(ctx, store.InsightQuery{Weeks: 4, TeamID: h.team.ID, TemplateID: h.gated.ID}, refreshAt)
	if err != nil {
		t.Fatal(err)
	}
	if pg.Total.Submitted != 2 || len(pg.ByTeam)+len(pg.ByTemplate) != 0 {
		t.Errorf("payments gated: %+v", pg.Total)
	}
	checkDur(t, "payments gated wait", pg.Total.Wait, 1, 7200, 7200, 7200)

	// Incremental: r6 stops at 10:00, r7 is approved at 09:00 on the 18th and
	// runs from 09:10. Only this week is recomputed.
	h.ev(t, r6, ts(18, 10, 0, 0), "cluster", "state", running, stopped, "")
	h.ev(t, r7, ts(18, 9, 0, 0), "manager", "approval", pending, approved, "ok")
	h.ev(t, r7, ts(18, 9, 0, 1), "provisioner", "vm_created", approved, prov, "")
	h.ev(t, r7, ts(18, 9, 10, 0), "cluster", "state", prov, running, "")
	res, err = h.st.RefreshInsight(ctx, refreshAt)
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 2 || res.Weeks != 1 || !res.Periods {
		t.Errorf("incremental refresh: %+v", res)
	}
	in, err = h.st.Insight(ctx, store.InsightQuery{Weeks: 4}, refreshAt)
	if err != nil {
		t.Fatal(err)
	}
	// r7: wait 23 h = 82800 s, lead 23 h 10 min = 83400 s. W0 lead 30, 83400.
	checkDur(t, "W0 lead after", in.Weeks[3].Lead, 2, 41715, 75063, 83400)
	checkDur(t, "W0 wait after", in.Weeks[3].Wait, 1, 82800, 82800, 82800)
	// r6 ran 09:00:30 on the 17th to 10:00 on the 18th; r7 from 09:10 to 12:00.
	r6h = 24 + 59.0/60 + 30.0/3600
	r7h := 2 + 50.0/60
	checkUsage(t, "W0 usage after", in.Weeks[3].Showback, 4, 60+r5h*4+r6h+r7h, 120+r5h*8+r6h+r7h*2)
	checkDur(t, "W1 lead unchanged", in.Weeks[2].Lead, 3, 120, 6024, 7500)

	// Nothing new: only this week (VMs still running) is recomputed.
	res, err = h.st.RefreshInsight(ctx, refreshAt.Add(time.Hour))
	if err != nil || res.Requests != 0 || res.Weeks != 1 || res.Periods {
		t.Errorf("idle refresh: %+v %v", res, err)
	}
	// A week later: the weeks since the last refresh are recomputed, and the
	// period moves.
	res, err = h.st.RefreshInsight(ctx, refreshAt.AddDate(0, 0, 7))
	if err != nil || res.Weeks != 2 || !res.Periods {
		t.Errorf("refresh a week later: %+v %v", res, err)
	}
	in, err = h.st.Insight(ctx, store.InsightQuery{Weeks: 4}, refreshAt.AddDate(0, 0, 7))
	if err != nil {
		t.Fatal(err)
	}
	// Next week, r2, r5 and r7 ran from Monday to the refresh (60 h).
	checkUsage(t, "next week", in.Weeks[3].Showback, 3, 60*(1+4+1), 60*(2+8+2))
}

func TestInsightRefreshWithoutData(t *testing.T) {
	h := setupHistory(t)
	ctx := context.Background()
	in, err := h.st.Insight(ctx, store.InsightQuery{Weeks: 12}, refreshAt)
	if err != nil || !in.AsOf.IsZero() || len(in.Weeks) != 12 {
		t.Fatalf("never refreshed: %+v %v", in, err)
	}
	if _, err := h.st.RefreshInsight(ctx, refreshAt); err != nil {
		t.Fatal(err)
	}
	in, err = h.st.Insight(ctx, store.InsightQuery{Weeks: 12}, refreshAt)
	if err != nil || !in.AsOf.Equal(refreshAt) || in.Total.Submitted != 0 || len(in.ByTeam) != 0 {
		t.Errorf("empty: %+v %v", in, err)
	}
	if _, err := h.st.Insight(ctx, store.InsightQuery{Weeks: 5}, refreshAt); err == nil {
		t.Error("a period the summary does not keep was accepted")
	}
}

func TestWeekOf(t *testing.T) {
	for in, want := range map[time.Time]time.Time{
		ts(16, 0, 0, 0):   ts(16, 0, 0, 0),
		ts(22, 23, 59, 0): ts(16, 0, 0, 0),
		ts(23, 0, 0, 0):   ts(23, 0, 0, 0),
		ts(18, 12, 0, 0).In(time.FixedZone("x", -11*3600)): ts(16, 0, 0, 0),
	} {
		if got := store.WeekOf(in); !got.Equal(want) {
			t.Errorf("WeekOf(%v) = %v, want %v", in, got, want)
		}
	}
}
