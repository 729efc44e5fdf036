package web

import (
	"bytes"
	"context"
	"fmt"
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
