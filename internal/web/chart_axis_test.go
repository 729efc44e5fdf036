package web

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"strings"
	"testing"
)

// TestWeekAxisLabelsFitAndLongLabelsHaveTooltips checks the geometry that
// made the last week labels overlap and run off the chart: at most eight
// labels, their middles at least 60 units apart (a week label is about 50 wide), the
// latest ending inside the chart; and a shortened reason keeps its whole
// text as a tooltip.
func TestWeekAxisLabelsFitAndLongLabelsHaveTooltips(t *testing.T) {
	for _, n := range []int{2, 8, 9, 13, 26, 52} {
		labels := make([]string, n)
		s := newSeries("requests", n)
		for i := range labels {
			labels[i] = fmt.Sprintf("2026-W%02d", i+1)
			s.set(i, float64(i))
		}
		c := barChart("weeks", "Weeks", "", labels, []series{s}, linearScale(float64(n)), fmtCount)
		if len(c.XTicks) > maxXTicks {
			t.Errorf("%d weeks: %d labels, want at most %d", n, len(c.XTicks), maxXTicks)
		}
		last := c.XTicks[0]
		if last.Label != labels[n-1] || last.anchor() != "end" || last.Pos > c.Width-chartRight+0.01 {
			t.Errorf("%d weeks: the latest label %+v does not end inside the chart (width %v)", n, last, c.Width)
		}
		for i := 1; i < len(c.XTicks); i++ {
			// The latest ends at its edge: measure between label middles.
			a, b := c.XTicks[i-1].Pos, c.XTicks[i].Pos
			if i == 1 {
				a -= 25
			}
			if a-b < 60 {
				t.Errorf("%d weeks: labels %q and %q are %.0f apart", n, c.XTicks[i].Label, c.XTicks[i-1].Label, a-b)
			}
		}
	}
	r := newSeries("failed", 1)
	r.set(0, 3)
	long := strings.Repeat("the image could not be pulled ", 4)
	c := hbarChart("failures", "Failures", "", "Reason", []string{long}, []series{r}, linearScale(3), fmtCount)
	var b bytes.Buffer
	if err := chartFigure(c).Render(context.Background(), &b); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "<title>"+long+"</title>") {
		t.Error("a shortened reason has no tooltip with its whole text")
	}
}

// TestAxisTicksAreRoundAndCountsWhole checks the value axes: ticks start at
// 0, a round step apart (1, 2 or 5 times a power of ten), the last at or
// above the top; a count's ticks are whole numbers with labels that differ
// (0, 1, 2, not 0, 0, 1, 2, 2).
func TestAxisTicksAreRoundAndCountsWhole(t *testing.T) {
	round := func(step float64) bool {
		for _, m := range []float64{1, 2, 5} {
			for e := -3; e <= 6; e++ {
				if r := m * math.Pow(10, float64(e)); math.Abs(step-r) < r*1e-9 {
					return true
				}
			}
		}
		return false
	}
	for _, c := range []struct {
		name  string
		top   float64
		scale func(float64) yScale
		whole bool
	}{
		{"count", 1, countScale, true}, {"count", 2, countScale, true}, {"count", 3, countScale, true},
		{"count", 7, countScale, true}, {"count", 10, countScale, true}, {"count", 23, countScale, true},
		{"count", 480, countScale, true}, {"hours", 0.3, linearScale, false}, {"hours", 8, linearScale, false},
		{"hours", 10, linearScale, false}, {"hours", 1234, linearScale, false},
	} {
		s := c.scale(c.top)
		if len(s.ticks) < 2 || s.ticks[0] != 0 || s.ticks[len(s.ticks)-1] < c.top {
			t.Errorf("%s up to %v: ticks %v", c.name, c.top, s.ticks)
			continue
		}
		step := s.ticks[1]
		labels := map[string]bool{}
		for i, v := range s.ticks {
			if math.Abs(v-float64(i)*step) > step*1e-9 {
				t.Errorf("%s up to %v: ticks %v are not evenly apart", c.name, c.top, s.ticks)
			}
			if c.whole {
				if v != math.Trunc(v) || labels[fmtCount(v)] {
					t.Errorf("%s up to %v: ticks %v are not distinct whole numbers", c.name, c.top, s.ticks)
				}
				labels[fmtCount(v)] = true
			}
		}
		if !round(step) {
			t.Errorf("%s up to %v: the step %v is not round (ticks %v)", c.name, c.top, step, s.ticks)
		}
	}
}
