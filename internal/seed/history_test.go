package seed_test

import (
	"context"
	"testing"
	"time"

	"paddock/internal/seed"
	"paddock/internal/store"
	"paddock/internal/templatefile"
	"paddock/internal/testdb"
	"paddock/templates"
)

// setup returns a store on a private database holding the example templates.
func setup(t *testing.T) *store.Store {
	t.Helper()
	t.Parallel()
	st := store.New(testdb.New(t))
	specs, err := templatefile.Read(templates.FS)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range specs {
		if _, _, err := st.PublishTemplate(context.Background(), s, nil); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

func countRows(t *testing.T, st *store.Store, q string, args ...any) int {
	t.Helper()
	var n int
	if err := st.Pool().QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func TestSeedHistoryMakesConsistentLives(t *testing.T) {
	st := setup(t)
	ctx := context.Background()
	now := time.Date(2026, 3, 18, 12, 0, 0, 0, time.UTC)
	added, err := seed.History(ctx, st, 600, now, 3, nil)
	if err != nil || added != 600 {
		t.Fatalf("added %d: %v", added, err)
	}
	// Topping up to the same number adds nothing.
	if again, err := seed.History(ctx, st, 600, now, 3, nil); err != nil || again != 0 {
		t.Errorf("second seed added %d: %v", again, err)
	}
	for what, q := range map[string]string{
		"requests without events": `SELECT count(*) FROM requests r WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.request_id = r.id)`,
		// The request's state is where its last state change took it.
		"state differs from the last event": `SELECT count(*) FROM requests r WHERE r.state <> (SELECT to_state FROM events e
			WHERE e.request_id = r.id ORDER BY e.id DESC LIMIT 1)`,
		// Each event starts where the one before it ended, in time order.
		"events out of step": `SELECT count(*) FROM (SELECT from_state, at, lag(to_state) OVER w AS prev, lag(at) OVER w AS prev_at
			FROM events WINDOW w AS (PARTITION BY request_id ORDER BY id)) x
			WHERE prev IS NOT NULL AND (from_state <> prev OR at < prev_at)`,
		"events in the future":            `SELECT count(*) FROM events WHERE at > '2026-03-18 12:00:00+00'`,
		"requests made before the submit": `SELECT count(*) FROM requests r JOIN events e ON e.request_id = r.id AND e.kind = 'submitted' WHERE e.at < r.created_at`,
		// Nothing is left waiting for work no job will do.
		"requests left in passing states": `SELECT count(*) FROM requests WHERE state IN ('pending_approval', 'approved', 'provisioning')`,
		"ids not in time order": `SELECT count(*) FROM (SELECT created_at, lag(created_at) OVER (ORDER BY id) AS prev FROM requests) x
			WHERE created_at < prev`,
	} {
		if n := countRows(t, st, q); n != 0 {
			t.Errorf("%s: %d", what, n)
		}
	}
	// A realistic mix.
	for what, q := range map[string]string{
		"auto-approved":       `SELECT count(*) FROM events WHERE kind = 'decision' AND to_state = 'approved'`,
		"decided by a person": `SELECT count(*) FROM events WHERE kind = 'approval'`,
		"rejected":            `SELECT count(*) FROM requests WHERE state = 'rejected'`,
		"failed":              `SELECT count(*) FROM events WHERE to_state = 'failed'`,
		"stopped":             `SELECT count(*) FROM events WHERE to_state = 'stopped'`,
		"expired":             `SELECT count(*) FROM events WHERE to_state = 'expired'`,
		"extended":            `SELECT count(*) FROM events WHERE kind = 'lease_extended'`,
		"running now":         `SELECT count(*) FROM requests WHERE state = 'running'`,
		"searchable":          `SELECT count(*) FROM requests WHERE justification <> ''`,
		"teams":               `SELECT count(DISTINCT team_id) - 10 FROM requests`,
	} {
		if n := countRows(t, st, q); n <= 0 {
			t.Errorf("no %s", what)
		}
	}
	// The summary counts every request once.
	if _, err := st.RefreshInsight(ctx, now); err != nil {
		t.Fatal(err)
	}
	if n := countRows(t, st, `SELECT sum(submitted) FROM insight_weekly WHERE team_id = 0 AND template_id = 0`); n != 600 {
		t.Errorf("weeks count %d requests", n)
	}
	in, err := st.Insight(ctx, store.InsightQuery{Weeks: 52}, now)
	if err != nil || in.Total.Submitted == 0 || in.Total.Lead.N == 0 || in.Total.Wait.N == 0 || len(in.Failures) == 0 ||
		len(in.ByTeam) < 10 || in.Weeks[len(in.Weeks)-1].VCPUHours <= 0 {
		t.Errorf("insight of the seeded history: %+v %v", in.Total, err)
	}
}
