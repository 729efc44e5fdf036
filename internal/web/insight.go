package web

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"paddock/internal/store"
)

type insightForm struct {
	Weeks, Team, Template string
}

// insightTile is one headline figure.
type insightTile struct {
	ID, Label, Value, Note string
}

// insightRow is one team's or template's line of the breakdown tables.
type insightRow struct {
	Name                                        string
	Requests, AutoShare, LeadP50, LeadP90, Lead string
	WaitP50, Failed, VCPUHours, MemHours, VMs   string
}

type insightView struct {
	Base      base
	Form      insightForm
	Errors    *store.ValidationError
	Periods   []int
	Teams     []string
	Templates []string
	// AsOf says how fresh the figures are.
	AsOf                      string
	Tiles                     []insightTile
	Lead, Wait, Auto, Failure chart
	LeadByTeam, LeadByTpl     chart
	CPU, Memory, VMs          chart
	ByTeam, ByTemplate        []insightRow
	Scope                     string
}

func (v insightView) err(field string) string { return v.Errors.For(field) }

// insight shows lead times, approval waits, failures and showback, read
// from the summary that a periodic job refreshes (see store.RefreshInsight).
func (s *Server) insight(w http.ResponseWriter, r *http.Request) error {
	ctx := r.Context()
	q := r.URL.Query()
	v := insightView{Base: s.viewBase(r, "Insight"), Periods: store.InsightPeriods,
		Form: insightForm{Weeks: q.Get("weeks"), Team: q.Get("team"), Template: q.Get("template")}}
	if v.Form.Weeks == "" {
		v.Form.Weeks = "12"
	}
	bad := &store.ValidationError{}
	iq := store.InsightQuery{}
	if n, err := strconv.Atoi(v.Form.Weeks); err != nil || !slices.Contains(store.InsightPeriods, n) {
		bad.Add("weeks", "choose one of the periods offered")
	} else {
		iq.Weeks = n
	}
	teams, err := s.store.Teams(ctx)
	if err != nil {
		return err
	}
	for _, t := range teams {
		v.Teams = append(v.Teams, t.Name)
		if t.Name == v.Form.Team {
			iq.TeamID = t.ID
		}
	}
	if v.Form.Team != "" && iq.TeamID == 0 {
		bad.Add("team", "no team is named %q", v.Form.Team)
	}
	templates, err := s.store.TemplateNames(ctx)
	if err != nil {
		return err
	}
	for _, t := range templates {
		v.Templates = append(v.Templates, t.Name)
		if t.Name == v.Form.Template {
			iq.TemplateID = t.ID
		}
	}
	if v.Form.Template != "" && iq.TemplateID == 0 {
		bad.Add("template", "no template is named %q", v.Form.Template)
	}
	if len(bad.Fields) > 0 {
		v.Errors = bad
		return render(w, r, http.StatusUnprocessableEntity, insightPage(v))
	}
	in, err := s.store.Insight(ctx, iq, time.Now())
	var vErr *store.ValidationError
	if errors.As(err, &vErr) {
		v.Errors = vErr
		return render(w, r, http.StatusUnprocessableEntity, insightPage(v))
	}
	if err != nil {
		return err
	}
	fillInsight(&v, in)
	return render(w, r, http.StatusOK, insightPage(v))
}

// fillInsight turns the figures into tiles, charts and tables.
func fillInsight(v *insightView, in store.Insight) {
	every := fmt.Sprintf("They are refreshed every %d minutes.", int(store.InsightRefreshInterval.Minutes()))
	if in.AsOf.IsZero() {
		v.AsOf = "The figures have not been computed yet. " + every
	} else {
		v.AsOf = "Figures as of " + fmtMinute(in.AsOf) + ". " + every
	}
	v.Scope = "all teams"
	if v.Form.Team != "" {
		v.Scope = "team " + v.Form.Team
	}
	if v.Form.Template != "" {
		v.Scope += ", template " + v.Form.Template
	}
	t := in.Total
	v.Tiles = []insightTile{
		{"requests", "Requests", count(t.Submitted), fmt.Sprintf("in the last %d weeks", in.Query.Weeks)},
		{"auto", "Approved automatically", fmtPercent(100 * t.AutoShare()), count(t.Approved) + " by a person, " + count(t.Rejected) + " rejected"},
		{"lead", "Request to running, median", durOrDash(t.Lead), "90th percentile " + durOrDashOf(t.Lead.N, t.Lead.P90)},
		{"wait", "Waiting for a person, median", durOrDash(t.Wait), "90th percentile " + durOrDashOf(t.Wait.N, t.Wait.P90)},
		{"failed", "Failed", count(t.Failed), fmtPercent(share(t.Failed, t.Submitted)) + " of requests"},
		{"vcpu", "vCPU-hours", fmtHours(t.VCPUHours), fmtHours(t.MemoryGiBHours) + " GiB-hours of memory"},
	}

	labels := make([]string, len(in.Weeks))
	for i, w := range in.Weeks {
		labels[i] = w.Week.Format("Jan 2")
	}
	if n := len(labels); n > 0 {
		labels[n-1] += " (so far)" // this week is not over
	}
	n := len(in.Weeks)
	p50, p90, mx := newSeries("median", n), newSeries("90th percentile", n), newSeries("longest", n)
	w50, w90 := newSeries("median", n), newSeries("90th percentile", n)
	auto := newSeries("approved automatically", n)
	lo, hi := 0.0, 0.0
	for i, w := range in.Weeks {
		if w.Lead.N > 0 {
			p50.set(i, w.Lead.P50.Seconds())
			p90.set(i, w.Lead.P90.Seconds())
			mx.set(i, w.Lead.Max.Seconds())
			lo, hi = minPositive(lo, w.Lead.P50.Seconds()), max(hi, w.Lead.Max.Seconds())
		}
		if w.Wait.N > 0 {
			w50.set(i, w.Wait.P50.Seconds())
			w90.set(i, w.Wait.P90.Seconds())
		}
		if w.Submitted > 0 {
			auto.set(i, 100*w.AutoShare())
		}
	}
	v.Lead = lineChart("lead", "Request to running, per week of request",
		"Line chart of the median, 90th percentile and longest time from request to running VM, per week, on a logarithmic scale.",
		labels, []series{p50, p90, mx}, durationScale(lo, hi), fmtSeconds)
	wlo, whi := 0.0, 0.0
	for i := range w50.Values {
		if w50.OK[i] {
			wlo, whi = minPositive(wlo, w50.Values[i]), max(whi, w90.Values[i])
		}
	}
	v.Wait = lineChart("wait", "Waiting for a person to approve or reject, per week of request",
		"Line chart of the median and 90th percentile time requests waited for a person's decision, per week, on a logarithmic scale.",
		labels, []series{w50, w90}, durationScale(wlo, whi), fmtSeconds)
	v.Auto = barChart("auto", "Share of requests approved automatically, per week",
		"Bar chart of the percentage of requests the policy approved without a person, per week.",
		labels, []series{auto}, yScale{lo: 0, hi: 100, ticks: []float64{0, 25, 50, 75, 100}}, fmtPercent)

	reasons := make([]string, len(in.Failures))
	counts := newSeries("failed requests", len(in.Failures))
	for i, f := range in.Failures {
		reasons[i] = f.Reason
		counts.set(i, float64(f.Count))
	}
	v.Failure = hbarChart("failures", "Failed requests by reason", "Bar chart of failed requests per reason.",
		"Reason", reasons, []series{counts}, countScale(topOf([]series{counts})), fmtCount)

	v.LeadByTeam = groupChart("lead-team", "Request to running, per team", "Team", in.ByTeam)
	v.LeadByTpl = groupChart("lead-template", "Request to running, per template", "Template", in.ByTemplate)
	v.ByTeam, v.ByTemplate = groupRows(in.ByTeam), groupRows(in.ByTemplate)

	// Showback: the six teams that used most, the rest together.
	const shown = 6
	cpu, mem, vms := []series{}, []series{}, []series{}
	for k, tu := range in.Showback {
		if k == shown {
			cpu, mem, vms = append(cpu, newSeries("other teams", n)), append(mem, newSeries("other teams", n)), append(vms, newSeries("other teams", n))
		}
		if k < shown {
			cpu, mem, vms = append(cpu, newSeries(tu.TeamName, n)), append(mem, newSeries(tu.TeamName, n)), append(vms, newSeries(tu.TeamName, n))
		}
		j := min(k, shown)
		for i, u := range tu.Weeks {
			cpu[j].set(i, cpu[j].Values[i]+u.VCPUHours)
			mem[j].set(i, mem[j].Values[i]+u.MemoryGiBHours)
			vms[j].set(i, vms[j].Values[i]+float64(u.ActiveVMs))
		}
	}
	top := func(ss []series) float64 {
		t := 0.0
		for i := range n {
			sum := 0.0
			for _, s := range ss {
				sum += s.Values[i]
			}
			t = max(t, sum)
		}
		return t
	}
	v.CPU = barChart("vcpu", "vCPU-hours per week, by team", "Stacked bar chart of the vCPU-hours each team's running VMs used per week.",
		labels, cpu, linearScale(top(cpu)), fmtHours)
	v.Memory = barChart("memory", "Memory GiB-hours per week, by team", "Stacked bar chart of the memory GiB-hours each team's running VMs used per week.",
		labels, mem, linearScale(top(mem)), fmtHours)
	v.VMs = barChart("vms", "VMs that ran, per week, by team", "Stacked bar chart of how many VMs of each team ran during each week.",
		labels, vms, countScale(top(vms)), fmtCount)
}

func groupChart(id, title, category string, gs []store.InsightGroup) chart {
	names := make([]string, len(gs))
	p50, p90 := newSeries("median", len(gs)), newSeries("90th percentile", len(gs))
	for i, g := range gs {
		names[i] = g.Name
		if g.Lead.N > 0 {
			p50.set(i, g.Lead.P50.Seconds())
			p90.set(i, g.Lead.P90.Seconds())
		}
	}
	ss := []series{p50, p90}
	return hbarChart(id, title, "Bar chart of the median and 90th percentile time from request to running VM, per "+
		strings.ToLower(category)+", on a logarithmic scale.", category, names, ss, durationScale(lowOf(ss), topOf(ss)), fmtSeconds)
}

func groupRows(gs []store.InsightGroup) []insightRow {
	rows := make([]insightRow, len(gs))
	for i, g := range gs {
		rows[i] = insightRow{Name: g.Name, Requests: count(g.Submitted), AutoShare: fmtPercent(100 * g.AutoShare()),
			LeadP50: durOrDash(g.Lead), LeadP90: durOrDashOf(g.Lead.N, g.Lead.P90), Lead: durOrDashOf(g.Lead.N, g.Lead.Max),
			WaitP50: durOrDash(g.Wait), Failed: count(g.Failed), VCPUHours: fmtHours(g.VCPUHours),
			MemHours: fmtHours(g.MemoryGiBHours), VMs: count(g.ActiveVMs)}
	}
	return rows
}

func count(n int) string { return fmtCount(float64(n)) }

func durOrDash(d store.Durations) string { return durOrDashOf(d.N, d.P50) }

func durOrDashOf(n int, d time.Duration) string {
	if n == 0 {
		return "—"
	}
	return fmtDuration(d)
}

func share(a, b int) float64 {
	if b == 0 {
		return 0
	}
	return 100 * float64(a) / float64(b)
}

func minPositive(a, b float64) float64 {
	if a <= 0 || b > 0 && b < a {
		return b
	}
	return a
}
