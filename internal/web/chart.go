package web

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
)

// Charts are drawn on the server as SVG: the geometry is worked out here,
// the chart templates only place it. Every chart carries the table of its
// numbers, for screen readers and for copying.

// chart is one SVG chart and the table of its numbers.
type chart struct {
	ID    string
	Title string
	// Summary describes the chart in a sentence for screen readers.
	Summary       string
	Width, Height float64
	Plot          box
	YTicks        []tick
	XTicks        []tick
	Lines         []chartLine
	Bars          []chartBar
	// Labels are category labels left of horizontal bars.
	Labels []tick
	Legend []legendItem
	Table  chartTable
	// Empty is true when there is nothing to draw.
	Empty bool
}

type box struct{ X, Y, W, H float64 }

type tick struct {
	Pos   float64
	Label string
	// Anchor is the label's text-anchor; "" is middle.
	Anchor string
	// Full is the whole label when Label is shortened, for its tooltip.
	Full string
}

// anchor is the tick's text-anchor.
func (t tick) anchor() string {
	if t.Anchor == "" {
		return "middle"
	}
	return t.Anchor
}

type chartLine struct {
	Class    string
	Dash     string
	Segments []string // polyline points; a gap in the data starts a new segment
	Points   []chartPoint
}

type chartPoint struct {
	X, Y  float64
	Title string
}

type chartBar struct {
	X, Y, W, H float64
	Class      string
	Title      string
}

type legendItem struct {
	Class, Dash, Name string
}

type chartTable struct {
	Caption string
	Head    []string
	Rows    [][]string
}

// series is one named row of values; ok[i] false means no value.
type series struct {
	Name   string
	Values []float64
	OK     []bool
}

func newSeries(name string, n int) series {
	return series{Name: name, Values: make([]float64, n), OK: make([]bool, n)}
}

func (s *series) set(i int, v float64) { s.Values[i], s.OK[i] = v, true }

// dashes tell the lines of one chart apart without colour.
var dashes = []string{"", "6 4", "2 3", "10 3 2 3"}

const (
	chartW      = 720.0
	chartH      = 240.0
	chartLeft   = 70.0
	chartRight  = 12.0
	chartTop    = 12.0
	chartBottom = 36.0
)

func plotBox() box {
	return box{X: chartLeft, Y: chartTop, W: chartW - chartLeft - chartRight, H: chartH - chartTop - chartBottom}
}

// xTicks labels at most maxXTicks of n slots, evenly.
//
// A week label is about 50 units wide: eight fit the plot with room between
// them. The latest ends at its slot rather than centring on it, so that it
// is not cut off at the chart's right edge.
func xTicks(labels []string, x func(i int) float64) []tick {
	step := max(1, (len(labels)+maxXTicks-1)/maxXTicks)
	var ts []tick
	for i := len(labels) - 1; i >= 0; i -= step { // the latest always labelled
		ts = append(ts, tick{Pos: x(i), Label: labels[i]})
	}
	if len(ts) > 0 && len(labels) > 1 {
		ts[0].Anchor = "end"
		ts[0].Pos += (x(1) - x(0)) / 2 // the slot's right edge
		ts[0].Pos = min(ts[0].Pos, chartW-chartRight)
	}
	return ts
}

// maxXTicks is how many labels an x axis carries at most.
const maxXTicks = 8

// yScale maps values to the plot's height.
type yScale struct {
	lo, hi float64
	log    bool
	ticks  []float64
}

// frac places v between the scale's ends: 0 at lo, 1 at hi, clamped.
func (s yScale) frac(v float64) float64 {
	f := (v - s.lo) / (s.hi - s.lo)
	if s.log {
		f = (math.Log10(max(v, s.lo)) - math.Log10(s.lo)) / (math.Log10(s.hi) - math.Log10(s.lo))
	}
	return min(max(f, 0), 1)
}

func (s yScale) y(p box, v float64) float64 { return p.Y + p.H - s.frac(v)*p.H }

// linearScale runs from 0 to a round number above top.
func linearScale(top float64) yScale {
	if top <= 0 {
		top = 1
	}
	mag := math.Pow(10, math.Floor(math.Log10(top)))
	var hi float64
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if hi = m * mag; hi >= top {
			break
		}
	}
	// Ticks a round step apart (1, 2 or 5 times a power of ten), so that
	// none needs rounding to be labelled: 0, 2, 4, 6, 8, 10 rather than
	// 0, 2.5, 5, 7.5, 10.
	step := hi / 5
	if m := step / math.Pow(10, math.Floor(math.Log10(step)+1e-9)); math.Abs(m-1) > 1e-9 && math.Abs(m-2) > 1e-9 && math.Abs(m-5) > 1e-9 {
		step = hi / 4
	}
	s := yScale{lo: 0, hi: hi}
	for i := 0; float64(i)*step <= hi*(1+1e-9); i++ {
		// Printed to a dozen digits and read back: 0.3, not 0.30000000000000004.
		t, _ := strconv.ParseFloat(strconv.FormatFloat(float64(i)*step, 'g', 12, 64), 64)
		s.ticks = append(s.ticks, t)
	}
	return s
}

// countScale is linearScale for things counted one by one (requests,
// VMs): its ticks are whole numbers, 0, 1, 2 rather than 0, 0.5, 1, 1.5, 2,
// which a count's labels would print as 0, 0, 1, 2, 2.
func countScale(top float64) yScale {
	s := linearScale(top)
	if len(s.ticks) < 2 || s.ticks[1] >= 1 {
		return s
	}
	s.hi = math.Max(1, math.Ceil(top))
	s.ticks = s.ticks[:0]
	for t := 0.0; t <= s.hi; t++ {
		s.ticks = append(s.ticks, t)
	}
	return s
}

// durationTicks are the round durations a log axis may be labelled with.
var durationTicks = []float64{1, 10, 60, 5 * 60, 15 * 60, 3600, 4 * 3600, 86400, 3 * 86400, 7 * 86400, 28 * 86400, 91 * 86400}

// durationScale is a log scale from the round duration below lo to the one
// at or above hi (seconds), labelled with round durations: lead times run
// from seconds to weeks.
func durationScale(lo, hi float64) yScale {
	lo, hi = max(lo, 1), max(hi, 1)
	s := yScale{log: true, lo: 1, hi: durationTicks[len(durationTicks)-1]}
	for _, t := range durationTicks {
		if t < lo { // strictly: the smallest value stands clear of the axis
			s.lo = t
		}
	}
	for i := len(durationTicks) - 1; i >= 0; i-- {
		if durationTicks[i] >= hi {
			s.hi = durationTicks[i]
		}
	}
	if s.hi <= s.lo {
		s.hi = s.lo * 10
	}
	for _, t := range durationTicks {
		if t >= s.lo && t <= s.hi {
			s.ticks = append(s.ticks, t)
		}
	}
	return s
}

// lineChart draws series over the slots named by labels.
func lineChart(id, title, summary string, labels []string, ss []series, scale yScale, format func(float64) string) chart {
	p := plotBox()
	c := chart{ID: id, Title: title, Summary: summary, Width: chartW, Height: chartH, Plot: p}
	slot := p.W / float64(max(len(labels), 1))
	x := func(i int) float64 { return p.X + slot*(float64(i)+0.5) }
	c.XTicks = xTicks(labels, x)
	for _, t := range scale.ticks {
		c.YTicks = append(c.YTicks, tick{Pos: scale.y(p, t), Label: format(t)})
	}
	c.Empty = true
	for k, s := range ss {
		l := chartLine{Class: "s" + strconv.Itoa(k), Dash: dashes[k%len(dashes)]}
		var seg []string
		for i, v := range s.Values {
			if !s.OK[i] || scale.log && v <= 0 {
				if len(seg) > 0 {
					l.Segments = append(l.Segments, strings.Join(seg, " "))
					seg = nil
				}
				continue
			}
			c.Empty = false
			pt := chartPoint{X: x(i), Y: scale.y(p, min(v, scale.hi)), Title: fmt.Sprintf("%s, %s: %s", labels[i], s.Name, format(v))}
			seg = append(seg, fx(pt.X)+","+fx(pt.Y))
			l.Points = append(l.Points, pt)
		}
		if len(seg) > 0 {
			l.Segments = append(l.Segments, strings.Join(seg, " "))
		}
		c.Lines = append(c.Lines, l)
		c.Legend = append(c.Legend, legendItem{Class: l.Class, Dash: l.Dash, Name: s.Name})
	}
	c.Table = seriesTable(title, "Week", labels, ss, format)
	return c
}

// barChart draws vertical bars, stacked when there are several series.
func barChart(id, title, summary string, labels []string, ss []series, scale yScale, format func(float64) string) chart {
	p := plotBox()
	c := chart{ID: id, Title: title, Summary: summary, Width: chartW, Height: chartH, Plot: p, Empty: true}
	slot := p.W / float64(max(len(labels), 1))
	x := func(i int) float64 { return p.X + slot*(float64(i)+0.5) }
	c.XTicks = xTicks(labels, x)
	for _, t := range scale.ticks {
		c.YTicks = append(c.YTicks, tick{Pos: scale.y(p, t), Label: format(t)})
	}
	w := slot * 0.7
	for i := range labels {
		base := 0.0
		for k, s := range ss {
			if !s.OK[i] || s.Values[i] <= 0 {
				continue
			}
			c.Empty = false
			y0, y1 := scale.y(p, base), scale.y(p, min(base+s.Values[i], scale.hi))
			base += s.Values[i]
			c.Bars = append(c.Bars, chartBar{X: x(i) - w/2, Y: y1, W: w, H: y0 - y1, Class: "s" + strconv.Itoa(k),
				Title: fmt.Sprintf("%s, %s: %s", labels[i], s.Name, format(s.Values[i]))})
		}
	}
	if len(ss) > 1 {
		for k, s := range ss {
			c.Legend = append(c.Legend, legendItem{Class: "s" + strconv.Itoa(k), Name: s.Name})
		}
	}
	c.Table = seriesTable(title, "Week", labels, ss, format)
	return c
}

// hbarChart draws one group of horizontal bars per category (a team, a
// template, a reason), one bar per series, along a labelled value axis.
func hbarChart(id, title, summary, category string, cats []string, ss []series, scale yScale, format func(float64) string) chart {
	const rowH, left = 30.0, 280.0
	p := box{X: left, Y: chartTop, W: chartW - left - chartRight - 20, H: rowH * float64(max(len(cats), 1))}
	c := chart{ID: id, Title: title, Summary: summary, Width: chartW, Height: p.Y + p.H + chartBottom, Plot: p, Empty: true}
	for _, t := range scale.ticks {
		c.XTicks = append(c.XTicks, tick{Pos: p.X + scale.frac(t)*p.W, Label: format(t)})
	}
	barH := (rowH - 8) / float64(max(len(ss), 1))
	for i, cat := range cats {
		y := p.Y + rowH*float64(i)
		c.Labels = append(c.Labels, tick{Pos: y + rowH/2, Label: shorten(cat, 44), Full: cat})
		for k, s := range ss {
			if !s.OK[i] || s.Values[i] <= 0 {
				continue
			}
			c.Empty = false
			c.Bars = append(c.Bars, chartBar{X: p.X, Y: y + 4 + barH*float64(k), W: max(scale.frac(s.Values[i])*p.W, 1), H: barH - 1,
				Class: "s" + strconv.Itoa(k), Title: fmt.Sprintf("%s, %s: %s", cat, s.Name, format(s.Values[i]))})
		}
	}
	if len(ss) > 1 {
		for k, s := range ss {
			c.Legend = append(c.Legend, legendItem{Class: "s" + strconv.Itoa(k), Name: s.Name})
		}
	}
	c.Table = seriesTable(title, category, cats, ss, format)
	return c
}

// topOf is the largest value of the series.
func topOf(ss []series) float64 {
	t := 0.0
	for _, s := range ss {
		for i, v := range s.Values {
			if s.OK[i] {
				t = max(t, v)
			}
		}
	}
	return t
}

// lowOf is the smallest positive value of the series.
func lowOf(ss []series) float64 {
	l := 0.0
	for _, s := range ss {
		for i, v := range s.Values {
			if s.OK[i] && v > 0 && (l == 0 || v < l) {
				l = v
			}
		}
	}
	return l
}

// seriesTable lists the values with one row per slot and a column per series.
func seriesTable(caption, first string, labels []string, ss []series, format func(float64) string) chartTable {
	t := chartTable{Caption: caption, Head: []string{first}}
	for _, s := range ss {
		t.Head = append(t.Head, s.Name)
	}
	for i, l := range labels {
		row := []string{l}
		for _, s := range ss {
			if s.OK[i] {
				row = append(row, format(s.Values[i]))
			} else {
				row = append(row, "—")
			}
		}
		t.Rows = append(t.Rows, row)
	}
	return t
}

func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// fx formats a coordinate.
func fx(v float64) string { return strconv.FormatFloat(v, 'f', 1, 64) }

// fmtSeconds renders a duration in seconds in at most two units:
// "45 s", "4 min 12 s", "2 h 13 min", "3 d 4 h".
func fmtSeconds(v float64) string { return fmtDuration(time.Duration(v * float64(time.Second))) }

func fmtDuration(d time.Duration) string {
	if d < 0 {
		d = -d
	}
	s := int64(d.Round(time.Second) / time.Second)
	switch {
	case d < time.Second:
		return strconv.FormatInt(d.Milliseconds(), 10) + " ms"
	case s < 60:
		return fmt.Sprintf("%d s", s)
	case s < 3600:
		return twoUnits(s/60, "min", s%60, "s")
	case s < 86400:
		return twoUnits(s/3600, "h", (s%3600)/60, "min")
	default:
		return twoUnits(s/86400, "d", (s%86400)/3600, "h")
	}
}

func twoUnits(a int64, ua string, b int64, ub string) string {
	if b == 0 {
		return fmt.Sprintf("%d %s", a, ua)
	}
	return fmt.Sprintf("%d %s %d %s", a, ua, b, ub)
}

func fmtPercent(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) + " %" }

func fmtCount(v float64) string { return groupThousands(strconv.FormatFloat(v, 'f', 0, 64)) }

// fmtHours renders hours: whole hours, or tenths below ten.
func fmtHours(v float64) string {
	if v < 10 && v != math.Trunc(v) {
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return groupThousands(strconv.FormatFloat(v, 'f', 0, 64))
}

// groupThousands separates thousands of a whole number with a narrow space.
func groupThousands(s string) string {
	n := len(s)
	if n <= 4 {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (n-i)%3 == 0 {
			b.WriteRune('\u202f')
		}
		b.WriteRune(r)
	}
	return b.String()
}
