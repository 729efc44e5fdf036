package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestSpliceAppendsThenReplacesOnlyItsSection(t *testing.T) {
	file := filepath.Join(t.TempDir(), "BENCHMARKS.md")
	other := "# Benchmarks\n\n<!-- history-bench:begin -->\nhistory figures\n<!-- history-bench:end -->\n"
	if err := os.WriteFile(file, []byte(other), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := splice(file, "first run\n"); err != nil {
		t.Fatal(err)
	}
	if err := splice(file, "second run\n"); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	if !strings.HasPrefix(s, other) {
		t.Errorf("the other sections changed:\n%s", s)
	}
	if strings.Contains(s, "first run") || strings.Count(s, "second run") != 1 || strings.Count(s, beginMark) != 1 ||
		strings.Count(s, "## Browser console") != 1 {
		t.Errorf("want one section with the second run only:\n%s", s)
	}
}

func TestVerdictConcludesOnlyOnADifferenceThatHoldsInFourRoundsOfFive(t *testing.T) {
	for _, c := range []struct {
		slower int
		want   string
	}{
		{16, "the bridge was consistently slower than direct (16 of 20 rounds), by a median 20%."},
		{15, "the bridge was not consistently slower than direct (15 of 20 rounds): the machine's load varied more than they differ."},
	} {
		if got := verdict("the bridge", "direct", 0.8, c.slower, 20); got != c.want {
			t.Errorf("verdict with %d slower rounds = %q, want %q", c.slower, got, c.want)
		}
	}
}

func TestSummarisePicksNearestRankPercentiles(t *testing.T) {
	var s []time.Duration
	for i := 100; i >= 1; i-- {
		s = append(s, time.Duration(i)*time.Millisecond)
	}
	got := summarise(s)
	if got.n != 100 || got.p50 != 50*time.Millisecond || got.p99 != 99*time.Millisecond || got.max != 100*time.Millisecond {
		t.Errorf("summarise(1..100 ms) = %+v", got)
	}
}

func TestPairedComparesRoundByRound(t *testing.T) {
	base := rate{rounds: []float64{100, 50, 200, 100}}
	x := rate{rounds: []float64{90, 40, 220, 80}} // ratios 0.9, 0.8, 1.1, 0.8
	m, slower := paired(x, base)
	if m < 0.849 || m > 0.851 || slower != 3 {
		t.Errorf("paired = %v, %d; want the median 0.85 and 3 slower rounds", m, slower)
	}
	if consistent(3, 4) || !consistent(4, 5) {
		t.Error("consistent wants at least four slower rounds in five")
	}
}
