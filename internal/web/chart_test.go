package web

import (
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"paddock/internal/store"
)

func TestFmtDuration(t *testing.T) {
	for d, want := range map[time.Duration]string{
		400 * time.Millisecond:                                "400 ms",
		45 * time.Second:                                      "45 s",
		4*time.Minute + 12*time.Second:                        "4 min 12 s",
		2 * time.Hour:                                         "2 h",
		2*time.Hour + 13*time.Minute + 20*time.Second:         "2 h 13 min",
		2*time.Hour + 12*time.Minute + 59999*time.Millisecond: "2 h 13 min",
		76 * time.Hour:                                        "3 d 4 h",
	} {
		if got := fmtDuration(d); got != want {
			t.Errorf("fmtDuration(%v) = %q, want %q", d, got, want)
		}
	}
}

func TestStepAfter(t *testing.T) {
	t0 := time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)
	ev := func(d time.Duration, kind string, from, to store.State) store.Event {
		return store.Event{At: t0.Add(d), Kind: kind, FromState: from, ToState: to}
	}
	events := []store.Event{
		ev(0, "submitted", "", store.StatePendingApproval),
		ev(10*time.Millisecond, "decision", store.StatePendingApproval, store.StatePendingApproval),
		ev(2*time.Hour+13*time.Minute, "approval", store.StatePendingApproval, store.StateApproved),
		ev(2*time.Hour+13*time.Minute+time.Second, "vm_created", store.StateApproved, store.StateProvisioning),
		ev(2*time.Hour+17*time.Minute+13*time.Second, "state", store.StateProvisioning, store.StateRunning),
		ev(26*time.Hour, "state", store.StateRunning, store.StateStopped),
		ev(27*time.Hour, "state", store.StateStopped, store.StateRunning),
	}
	want := []string{
		"",
		"after 10 ms",
		"after 2 h 13 min, 2 h 13 min after the request",
		"after 1 s",
		"after 4 min 12 s, 2 h 17 min after the request",
		"after 23 h 42 min",
		"after 1 h", // running again is not a milestone
	}
	for i, w := range want {
		if got := stepAfter(events, i); got != w {
			t.Errorf("step %d: %q, want %q", i, got, w)
		}
	}
}

func TestCSVRecordDefusesEveryTextCell(t *testing.T) {
	h := store.HistoryRow{ID: 7, CreatedAt: time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC), TeamName: "=team",
		RequesterLogin: "+login", TemplateName: "-tpl", Size: "@size", Name: "\tname", StateReason: "\rreason",
		Decision: "=decision", Justification: "=HYPERLINK(\"http://x\")", State: store.StateRunning}
	rec := historyCSVRecord(h)
	if len(rec) != len(historyCSVHeader) {
		t.Fatalf("%d cells for %d columns", len(rec), len(historyCSVHeader))
	}
	for i, cell := range rec {
		if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
			t.Errorf("column %s: %q starts a formula", historyCSVHeader[i], cell)
		}
	}
	if rec[0] != "7" || rec[1] != "2026-03-02T09:00:00Z" || rec[2] != "'=team" || rec[15] != `'=HYPERLINK("http://x")` {
		t.Errorf("record %q", rec)
	}
}

func inBox(t *testing.T, c chart, x, y float64) {
	t.Helper()
	p := c.Plot
	if x < p.X-0.01 || x > p.X+p.W+0.01 || y < p.Y-0.01 || y > p.Y+p.H+0.01 {
		t.Errorf("%s: point (%v, %v) outside the plot %+v", c.ID, x, y, p)
	}
}

func TestLineChartGeometry(t *testing.T) {
	labels := []string{"a", "b", "c", "d"}
	s := newSeries("median", 4)
	s.set(0, 60)
	s.set(1, 3600)
	s.set(3, 86400) // no value for c: the line breaks
	c := lineChart("lead", "Lead", "summary", labels, []series{s}, durationScale(60, 86400), fmtSeconds)
	if c.Empty || len(c.Lines) != 1 || len(c.Lines[0].Segments) != 2 || len(c.Lines[0].Points) != 3 {
		t.Fatalf("lines %+v", c.Lines)
	}
	pts := c.Lines[0].Points
	for _, p := range pts {
		inBox(t, c, p.X, p.Y)
	}
	// Larger values are higher up (smaller y), evenly on a log scale: an hour
	// is as far above a minute as a day is above an hour, in log terms.
	if !(pts[0].Y > pts[1].Y && pts[1].Y > pts[2].Y) {
		t.Errorf("not increasing upwards: %+v", pts)
	}
	r1 := (pts[0].Y - pts[1].Y) / math.Log10(60)
	r2 := (pts[1].Y - pts[2].Y) / math.Log10(24)
	if math.Abs(r1-r2) > 0.01 {
		t.Errorf("not a log scale: %v vs %v per decade", r1, r2)
	}
	if pts[1].Title != "b, median: 1 h" {
		t.Errorf("point title %q", pts[1].Title)
	}
	// The table has every week, with a dash where there is no value.
	if len(c.Table.Rows) != 4 || c.Table.Rows[2][1] != "—" || c.Table.Rows[3][1] != "1 d" || c.Table.Head[1] != "median" {
		t.Errorf("table %+v", c.Table)
	}
	if empty := lineChart("x", "X", "", labels, []series{newSeries("m", 4)}, durationScale(0, 0), fmtSeconds); !empty.Empty {
		t.Error("a chart without values is not empty")
	}
}

func TestStackedBarChartGeometry(t *testing.T) {
	a, b := newSeries("payments", 2), newSeries("billing", 2)
	a.set(0, 30)
	b.set(0, 20)
	a.set(1, 5)
	c := barChart("vcpu", "vCPU", "", []string{"w1", "w2"}, []series{a, b}, linearScale(50), fmtHours)
	if len(c.Bars) != 3 || len(c.Legend) != 2 {
		t.Fatalf("bars %+v", c.Bars)
	}
	// In week 1 the billing bar sits on the payments bar, and together they
	// reach 50 of the scale's 50: the top of the plot.
	pay, bill := c.Bars[0], c.Bars[1]
	if math.Abs(pay.Y-(bill.Y+bill.H)) > 0.01 || math.Abs(bill.Y-c.Plot.Y) > 0.01 || math.Abs(pay.H-1.5*bill.H) > 0.01 {
		t.Errorf("stack: %+v %+v plot %+v", pay, bill, c.Plot)
	}
	for _, r := range c.Bars {
		inBox(t, c, r.X, r.Y)
		inBox(t, c, r.X+r.W, r.Y+r.H)
	}
	if s := linearScale(7); s.hi != 10 || fmt.Sprint(s.ticks) != "[0 2 4 6 8 10]" {
		t.Errorf("linearScale(7) = %+v", s)
	}
	// Every tick a round step apart, none needing rounding to be labelled.
	for top, want := range map[float64]string{2: "[0 0.5 1 1.5 2]", 2.5: "[0 0.5 1 1.5 2 2.5]", 40: "[0 10 20 30 40 50]",
		0.3: "[0 0.1 0.2 0.3 0.4 0.5]", 170: "[0 50 100 150 200]"} {
		if got := fmt.Sprint(linearScale(top).ticks); got != want {
			t.Errorf("linearScale(%v) ticks %s, want %s", top, got, want)
		}
	}
	if s := linearScale(40); s.hi != 50 {
		t.Errorf("linearScale(40) = %+v", s)
	}
	if s := linearScale(0.3); s.hi != 0.5 {
		t.Errorf("linearScale(0.3) = %+v", s)
	}
}

func TestHorizontalBarChart(t *testing.T) {
	n := newSeries("failed requests", 2)
	n.set(0, 8)
	n.set(1, 2)
	c := hbarChart("failures", "Failures", "", "Reason", []string{strings.Repeat("long reason ", 10), "short"}, []series{n},
		linearScale(topOf([]series{n})), fmtCount)
	if len(c.Bars) != 2 || len(c.Labels) != 2 || !strings.HasSuffix(c.Labels[0].Label, "…") {
		t.Fatalf("%+v", c)
	}
	if math.Abs(c.Bars[0].W-4*c.Bars[1].W) > 0.01 || len(c.XTicks) != 6 || c.XTicks[5].Label != "10" || c.XTicks[1].Label != "2" {
		t.Errorf("widths %v %v, axis %+v", c.Bars[0].W, c.Bars[1].W, c.XTicks)
	}
	// Durations on a log scale: a median of a minute beside a 90th
	// percentile of a day is still a visible bar, and ticks are durations.
	m := newSeries("median", 1)
	m.set(0, 60)
	q := newSeries("90th percentile", 1)
	q.set(0, 86400)
	d := hbarChart("lead-team", "Lead", "", "Team", []string{"payments"}, []series{m, q}, durationScale(60, 86400), fmtSeconds)
	if d.Bars[0].W < 40 || d.XTicks[0].Label != "10 s" || d.XTicks[len(d.XTicks)-1].Label != "1 d" {
		t.Errorf("log bars %+v %+v, axis %+v", d.Bars[0], d.Bars[1], d.XTicks)
	}
	// The table keeps the whole reason.
	if c.Table.Rows[0][0] != strings.Repeat("long reason ", 10) || c.Table.Rows[1][1] != "2" {
		t.Errorf("table %+v", c.Table.Rows)
	}
}

func TestInsightPageRendersChartsWithTables(t *testing.T) {
	in := store.Insight{Query: store.InsightQuery{Weeks: 4}, AsOf: time.Date(2026, 3, 18, 12, 3, 0, 0, time.UTC)}
	for i := range 4 {
		w := store.InsightWeek{Week: time.Date(2026, 2, 23+7*i, 0, 0, 0, 0, time.UTC)}
		w.Submitted, w.AutoApproved, w.ReachedRunning = 10, 7, 9
		w.Lead = store.Durations{N: 9, P50: time.Minute, P90: 10 * time.Minute, Max: time.Hour}
		w.VCPUHours, w.MemoryGiBHours = 100, 200
		in.Weeks = append(in.Weeks, w)
	}
	in.Showback = []store.TeamShowback{{TeamID: 1, TeamName: "payments", Weeks: make([]store.Showback, 4)}}
	in.Showback[0].Weeks[3] = store.Showback{ActiveVMs: 3, VCPUHours: 12.5, MemoryGiBHours: 25}
	v := insightView{Form: insightForm{Weeks: "4"}}
	fillInsight(&v, in)
	if v.AsOf != "Figures as of 2026-03-18 12:03 UTC. They are refreshed every 5 minutes." {
		t.Errorf("as of %q", v.AsOf)
	}
	var b strings.Builder
	if err := insightPage(v).Render(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	page := b.String()
	for _, id := range []string{"lead", "wait", "auto", "failures", "vcpu", "memory", "vms"} {
		if !strings.Contains(page, `data-testid="chart-`+id+`"`) || !strings.Contains(page, `data-testid="table-`+id+`"`) {
			t.Errorf("chart %s or its table is missing", id)
		}
	}
	if strings.Count(page, "<svg") < 5 || !strings.Contains(page, "<th scope=\"row\">Mar 16 (so far)</th><td>1 min</td><td>10 min</td><td>1 h</td>") {
		t.Errorf("charts or the lead table rows are missing (%d charts drawn)", strings.Count(page, "<svg"))
	}
	if !strings.Contains(page, `data-testid="chart-empty-failures"`) {
		t.Error("an empty chart does not say so")
	}
	if strings.Contains(page, "style=") {
		t.Error("inline styles: the content security policy blocks them")
	}
}
