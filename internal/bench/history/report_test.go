package main

import (
	"strings"
	"testing"
)

// A history page's plan as EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF,
// SUMMARY ON) writes it: the count's InitPlan first, then the inner query's.
const pagePlan = `Sort (actual rows=51 loops=1)
  Sort Key: r.created_at DESC, r.id DESC
  InitPlan 1 (returns $0)
    ->  Aggregate (actual rows=1 loops=1)
          ->  Limit (actual rows=1001 loops=1)
                ->  Index Only Scan using requests_team_created on requests r_1 (actual rows=1001 loops=1)
                      Index Cond: (team_id = 1)
  InitPlan 2 (returns $1)
    ->  Limit (actual rows=51 loops=1)
          ->  Bitmap Heap Scan on requests r_2 (actual rows=51 loops=1)
                ->  Bitmap Index Scan on requests_history_search (actual rows=60 loops=1)
  ->  Nested Loop Left Join (actual rows=51 loops=1)
        ->  Index Scan using requests_pkey on requests r (actual rows=51 loops=1)
              Index Cond: (id = ANY ($1))
        ->  Limit (actual rows=1 loops=51)
              ->  Index Scan using events_request on events e (actual rows=1 loops=51)
Planning Time: 0.503 ms
Execution Time: 1.189 ms`

func TestPlanSummaryNamesTheRowsScansThenTheCounts(t *testing.T) {
	got := planSummary(strings.Split(pagePlan, "\n"))
	want := "Bitmap Heap Scan; Bitmap Index Scan on requests_history_search; count: Index Only Scan requests_team_created — 1.189 ms"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	// A plan without a count (the export's) names its inner scans alone.
	noCount := []string{"Limit (actual rows=51 loops=1)", "  ->  Index Only Scan using requests_created on requests r_1 (actual rows=51 loops=1)", "Execution Time: 0.282 ms"}
	if got := planSummary(noCount); got != "Index Only Scan requests_created — 0.282 ms" {
		t.Errorf("without a count: %q", got)
	}
	if planSummary(nil) != "—" {
		t.Error("an empty plan")
	}
}
