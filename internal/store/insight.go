package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
)

// Insight is read from a summary (tables insight_*, migration 0005) rather
// than computed from the requests on every page view: percentiles over a
// million requests take seconds, the summary answers in a millisecond.
//
// How the summary stays right: a statement trigger on events records every
// request that gained events in insight_dirty, in the same transaction. A
// refresh (RefreshInsight, run by a River periodic job every
// InsightRefreshInterval) takes those requests, recomputes their facts
// (request_facts: outcome, decision time, first running, failure) and their
// running stretches (request_runs) from their events, then recomputes only
// the weeks those changes touch, plus the weeks since the last refresh (VMs
// that are still running keep adding hours). The statistics over the last
// 4/12/26/52 weeks are recomputed when anything changed. Percentiles are
// exact (percentile_cont, interpolated), not estimated.

// InsightRefreshInterval is how often the summary is refreshed, and so how
// old its figures may be; the insight page says when they were taken.
const InsightRefreshInterval = 5 * time.Minute

// InsightPeriods are the periods, in weeks, the insight page offers.
var InsightPeriods = []int{4, 12, 26, 52}

// WeekOf returns the Monday 00:00 UTC that starts t's week.
func WeekOf(t time.Time) time.Time {
	t = t.UTC()
	d := time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
	return d.AddDate(0, 0, -((int(d.Weekday()) + 6) % 7))
}

// InsightRefresh says what one refresh did.
type InsightRefresh struct {
	// Requests is how many requests had new events.
	Requests int64
	// Weeks is how many weeks were recomputed.
	Weeks int64
	// Periods is true when the per-period statistics were recomputed.
	Periods bool
	// Skipped is true when another refresh was running.
	Skipped bool
}

const insightLockKey = 0x696e73696768 // "insigh"

// The per-request facts, from the request's events. State changes, not event
// kinds, decide: a person's decision is a move out of pending_approval to
// approved or rejected by anything but the policy's "decision" event.
const insightFactsUpsert = `
	INSERT INTO request_facts (request_id, team_id, template_id, created_at, outcome, decided_at, running_at, failed_at, fail_reason)
	SELECT r.id, r.team_id, r.template_id, r.created_at,
	       CASE WHEN e.auto THEN 'auto'
	            WHEN e.person_verdict = 'approved' THEN 'approved'
	            WHEN e.person_verdict = 'rejected' OR e.rejected THEN 'rejected'
	            WHEN e.withdrawn THEN 'withdrawn'
	            ELSE 'pending' END,
	       e.decided_at, e.running_at, e.failed_at, coalesce(e.fail_reason, '')
	FROM (
		SELECT ev.request_id,
		       coalesce(bool_or(ev.kind = 'decision' AND ev.to_state = 'approved'), false) AS auto,
		       coalesce(bool_or(ev.to_state = 'rejected'), false) AS rejected,
		       coalesce(bool_or(ev.from_state = 'pending_approval' AND ev.to_state = 'deleted'), false) AS withdrawn,
		       min(ev.at) FILTER (WHERE ev.kind <> 'decision' AND ev.from_state = 'pending_approval'
		                          AND ev.to_state IN ('approved', 'rejected')) AS decided_at,
		       (array_agg(ev.to_state ORDER BY ev.id) FILTER (WHERE ev.kind <> 'decision'
		          AND ev.from_state = 'pending_approval' AND ev.to_state IN ('approved', 'rejected')))[1] AS person_verdict,
		       min(ev.at) FILTER (WHERE ev.to_state = 'running' AND ev.from_state <> 'running') AS running_at,
		       min(ev.at) FILTER (WHERE ev.to_state = 'failed' AND ev.from_state <> 'failed') AS failed_at,
		       (array_agg(ev.reason ORDER BY ev.id) FILTER (WHERE ev.to_state = 'failed' AND ev.from_state <> 'failed'))[1] AS fail_reason
		FROM insight_batch b JOIN events ev ON ev.request_id = b.request_id
		GROUP BY ev.request_id
	) e
	JOIN requests r ON r.id = e.request_id
	ON CONFLICT (request_id) DO UPDATE SET outcome = EXCLUDED.outcome, decided_at = EXCLUDED.decided_at,
		running_at = EXCLUDED.running_at, failed_at = EXCLUDED.failed_at, fail_reason = EXCLUDED.fail_reason`

// A running stretch starts with a move into running and ends with the next
// move out of it.
const insightRunsInsert = `
	INSERT INTO request_runs (request_id, started_at, stopped_at, team_id, template_id, vcpu, memory_mib)
	SELECT x.request_id, x.at, x.next_at, r.team_id, r.template_id, r.vcpu, r.memory_mib
	FROM (
		SELECT ev.request_id, ev.at, ev.to_state, lead(ev.at) OVER (PARTITION BY ev.request_id ORDER BY ev.id) AS next_at
		FROM insight_batch b JOIN events ev ON ev.request_id = b.request_id
		WHERE (ev.to_state = 'running') <> (ev.from_state = 'running')
	) x
	JOIN requests r ON r.id = x.request_id
	WHERE x.to_state = 'running'
	ON CONFLICT (request_id, started_at) DO NOTHING`

// The weeks whose showback changed: where old and new running stretches of
// the batch's requests differ. A stretch that only gained its end changes
// nothing before the end.
const insightRunWeeks = `
	INSERT INTO insight_weeks (week)
	SELECT DISTINCT g::date
	FROM (
		SELECT CASE WHEN o.request_id IS NULL THEN n.started_at
		            WHEN n.request_id IS NULL THEN o.started_at
		            ELSE least(coalesce(o.stopped_at, 'infinity'), coalesce(n.stopped_at, 'infinity')) END AS lo,
		       CASE WHEN o.request_id IS NULL THEN coalesce(n.stopped_at, 'infinity')
		            WHEN n.request_id IS NULL THEN coalesce(o.stopped_at, 'infinity')
		            ELSE greatest(coalesce(o.stopped_at, 'infinity'), coalesce(n.stopped_at, 'infinity')) END AS hi
		FROM insight_old_runs o
		FULL JOIN (SELECT r.request_id, r.started_at, r.stopped_at FROM insight_batch b
		           JOIN request_runs r ON r.request_id = b.request_id) n
		  ON n.request_id = o.request_id AND n.started_at = o.started_at
		WHERE o.request_id IS NULL OR n.request_id IS NULL OR o.stopped_at IS DISTINCT FROM n.stopped_at
	) c
	CROSS JOIN LATERAL generate_series(date_trunc('week', c.lo AT TIME ZONE 'UTC'),
		date_trunc('week', least(c.hi, $1) AT TIME ZONE 'UTC'), interval '7 days') g
	WHERE c.lo < $1
	ON CONFLICT DO NOTHING`

// insightStats are the request statistics of a group of request_facts f.
const insightStats = `
	count(*) AS submitted,
	count(*) FILTER (WHERE f.outcome = 'auto') AS auto_approved,
	count(*) FILTER (WHERE f.outcome = 'approved') AS approved,
	count(*) FILTER (WHERE f.outcome = 'rejected') AS rejected,
	count(*) FILTER (WHERE f.outcome = 'withdrawn') AS withdrawn,
	count(f.failed_at) AS failed,
	count(f.running_at) AS reached_running,
	percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY extract(epoch FROM f.running_at - f.created_at)::float8) AS lead,
	max(extract(epoch FROM f.running_at - f.created_at)::float8) AS lead_max,
	count(f.decided_at) AS wait_n,
	percentile_cont(ARRAY[0.5, 0.9]) WITHIN GROUP (ORDER BY extract(epoch FROM f.decided_at - f.created_at)::float8) AS wait,
	max(extract(epoch FROM f.decided_at - f.created_at)::float8) AS wait_max`

const insightStatsColumns = `submitted, auto_approved, approved, rejected, withdrawn, failed, reached_running,
	lead_p50, lead_p90, lead_max, wait_n, wait_p50, wait_p90, wait_max`

const insightStatsValues = `q.submitted, q.auto_approved, q.approved, q.rejected, q.withdrawn, q.failed, q.reached_running,
	q.lead[1], q.lead[2], q.lead_max, q.wait_n, q.wait[1], q.wait[2], q.wait_max`

// groupingSets keeps every statistic for all requests, per team, per
// template, and per team and template (alias is the table with team_id and
// template_id), so that any filter of the page reads ready rows.
func groupingSets(key, alias string) string {
	return fmt.Sprintf(`GROUPING SETS ((%[1]s), (%[1]s, %[2]s.team_id), (%[1]s, %[2]s.template_id), (%[1]s, %[2]s.team_id, %[2]s.template_id))`, key, alias)
}

// insightWeekly recomputes the weeks in insight_weeks: request statistics by
// week of request, showback by the part of each running stretch in the week.
var insightWeekly = `
	INSERT INTO insight_weekly (template_id, team_id, week, ` + insightStatsColumns + `,
		active_vms, vcpu_hours, memory_gib_hours)
	WITH w AS (
		SELECT week, week::timestamp AT TIME ZONE 'UTC' AS lo, (week + 7)::timestamp AT TIME ZONE 'UTC' AS hi
		FROM insight_weeks
	), q AS (
		SELECT w.week, coalesce(f.team_id, 0) AS team_id, coalesce(f.template_id, 0) AS template_id, ` + insightStats + `
		FROM w JOIN request_facts f ON f.created_at >= w.lo AND f.created_at < w.hi AND f.created_at < $1
		GROUP BY ` + groupingSets("w.week", "f") + `
	), rw AS (
		-- the seconds each VM ran in each week: stretches that end after the
		-- first week starts and begin before the last one ends, split by week
		SELECT g.week, r.request_id, r.team_id, r.template_id, r.vcpu, r.memory_mib,
		       sum(extract(epoch FROM least(coalesce(r.stopped_at, $1), g.hi, $1) - greatest(r.started_at, g.lo))::float8) AS s
		FROM request_runs r
		CROSS JOIN LATERAL (
			SELECT d::date AS week, d AT TIME ZONE 'UTC' AS lo, (d + interval '7 days') AT TIME ZONE 'UTC' AS hi
			FROM generate_series(date_trunc('week', r.started_at AT TIME ZONE 'UTC'),
				date_trunc('week', least(coalesce(r.stopped_at, $1), $1) AT TIME ZONE 'UTC'), interval '7 days') d
		) g
		WHERE coalesce(r.stopped_at, 'infinity') > $2 AND r.started_at < $3
		  AND g.week IN (SELECT week FROM insight_weeks)
		GROUP BY g.week, r.request_id, r.team_id, r.template_id, r.vcpu, r.memory_mib
	), u AS (
		SELECT rw.week, coalesce(rw.team_id, 0) AS team_id, coalesce(rw.template_id, 0) AS template_id,
		       count(*) AS active_vms,
		       sum(rw.s * rw.vcpu) / 3600 AS vcpu_hours,
		       sum(rw.s * rw.memory_mib) / (1024 * 3600) AS memory_gib_hours
		FROM rw WHERE rw.s > 0
		GROUP BY ` + groupingSets("rw.week", "rw") + `
	)
	SELECT coalesce(q.template_id, u.template_id), coalesce(q.team_id, u.team_id), coalesce(q.week, u.week),
	       coalesce(q.submitted, 0), coalesce(q.auto_approved, 0), coalesce(q.approved, 0), coalesce(q.rejected, 0),
	       coalesce(q.withdrawn, 0), coalesce(q.failed, 0), coalesce(q.reached_running, 0),
	       q.lead[1], q.lead[2], q.lead_max, coalesce(q.wait_n, 0), q.wait[1], q.wait[2], q.wait_max,
	       coalesce(u.active_vms, 0), coalesce(u.vcpu_hours, 0), coalesce(u.memory_gib_hours, 0)
	FROM q FULL JOIN u ON u.week = q.week AND u.team_id = q.team_id AND u.template_id = q.template_id`

// insightWindow joins the periods p (weeks) to the requests made in their
// last p.weeks weeks, this week ($1) included, up to the refresh time ($2).
const insightWindow = `unnest($3::int[]) p(weeks)
	JOIN request_facts f ON f.created_at >= ($1::date - 7 * (p.weeks - 1))::timestamp AT TIME ZONE 'UTC' AND f.created_at < $2`

var insightPeriod = `
	INSERT INTO insight_period (weeks, template_id, team_id, ` + insightStatsColumns + `)
	SELECT q.weeks, q.template_id, q.team_id, ` + insightStatsValues + `
	FROM (
		SELECT p.weeks, coalesce(f.team_id, 0) AS team_id, coalesce(f.template_id, 0) AS template_id, ` + insightStats + `
		FROM ` + insightWindow + `
		GROUP BY ` + groupingSets("p.weeks", "f") + `
	) q`

// Failures are grouped by the first sentence of their reason, which names
// the cause; the rest is advice or detail.
var insightFailures = `
	INSERT INTO insight_failures (weeks, template_id, team_id, reason, failures)
	SELECT p.weeks, coalesce(f.template_id, 0), coalesce(f.team_id, 0), k.reason, count(*)
	FROM ` + insightWindow + ` AND f.failed_at IS NOT NULL
	CROSS JOIN LATERAL (SELECT coalesce(nullif(left(split_part(f.fail_reason, '. ', 1), 200), ''), 'no reason given') AS reason) k
	GROUP BY ` + groupingSets("p.weeks, k.reason", "f")

// RefreshInsight brings the insight summary up to date as of at (normally
// now). Only one refresh runs at a time; a second one returns at once with
// Skipped set.
func (s *Store) RefreshInsight(ctx context.Context, at time.Time) (InsightRefresh, error) {
	at = at.UTC()
	week := WeekOf(at)
	var res InsightRefresh
	err := s.inTx(ctx, func(tx pgx.Tx) error {
		var locked bool
		if err := tx.QueryRow(ctx, `SELECT pg_try_advisory_xact_lock($1)`, insightLockKey).Scan(&locked); err != nil {
			return fmt.Errorf("refresh insight: lock: %w", err)
		}
		if !locked {
			res.Skipped = true
			return nil
		}
		exec := func(what, sql string, args ...any) (int64, error) {
			tag, err := tx.Exec(ctx, sql, args...)
			if err != nil {
				return 0, fmt.Errorf("refresh insight: %s: %w", what, err)
			}
			return tag.RowsAffected(), nil
		}
		type step struct {
			what, sql string
			args      []any
		}
		run := func(steps ...step) error {
			for _, st := range steps {
				if _, err := exec(st.what, st.sql, st.args...); err != nil {
					return err
				}
			}
			return nil
		}
		err := run(
			step{what: "batch table", sql: `CREATE TEMP TABLE insight_batch (request_id bigint PRIMARY KEY) ON COMMIT DROP`},
			step{what: "weeks table", sql: `CREATE TEMP TABLE insight_weeks (week date PRIMARY KEY) ON COMMIT DROP`},
			step{what: "old runs table", sql: `CREATE TEMP TABLE insight_old_runs (request_id bigint, started_at timestamptz,
				stopped_at timestamptz) ON COMMIT DROP`},
			// Big, one-off statements: compiling them costs more than it
			// saves, and their sorts fit in memory.
			step{what: "jit", sql: `SET LOCAL jit = off`},
			step{what: "work_mem", sql: `SET LOCAL work_mem = '64MB'`},
		)
		if err != nil {
			return err
		}
		res.Requests, err = exec("take dirty requests", `
			WITH d AS (DELETE FROM insight_dirty RETURNING request_id)
			INSERT INTO insight_batch SELECT DISTINCT request_id FROM d`)
		if err != nil {
			return err
		}
		if res.Requests > 0 {
			err := run(
				step{what: "analyze batch", sql: `ANALYZE insight_batch`},
				step{what: "facts", sql: insightFactsUpsert},
				step{what: "old runs", sql: `WITH d AS (DELETE FROM request_runs r USING insight_batch b
					WHERE r.request_id = b.request_id RETURNING r.request_id, r.started_at, r.stopped_at)
					INSERT INTO insight_old_runs SELECT * FROM d`},
				step{what: "runs", sql: insightRunsInsert},
				step{what: "request weeks", sql: `INSERT INTO insight_weeks (week)
					SELECT DISTINCT date_trunc('week', f.created_at AT TIME ZONE 'UTC')::date
					FROM insight_batch b JOIN request_facts f ON f.request_id = b.request_id
					WHERE f.created_at < $1 ON CONFLICT DO NOTHING`, args: []any{at}},
				step{what: "run weeks", sql: insightRunWeeks, args: []any{at}},
			)
			if err != nil {
				return err
			}
		}
		// Time passing changes the weeks since the last refresh: VMs still
		// running have run longer.
		var last time.Time
		err = tx.QueryRow(ctx, `SELECT refreshed_week FROM insight_meta`).Scan(&last)
		first := errors.Is(err, pgx.ErrNoRows)
		if err != nil && !first {
			return fmt.Errorf("refresh insight: last refresh: %w", err)
		}
		from := week
		if !first && last.Before(week) {
			from = last
		}
		var lo, hi time.Time
		err = run(
			step{what: "current weeks", sql: `INSERT INTO insight_weeks (week)
				SELECT g::date FROM generate_series($1::date, $2::date, interval '7 days') g ON CONFLICT DO NOTHING`,
				args: []any{from, week}},
			step{what: "analyze weeks", sql: `ANALYZE insight_weeks`},
			step{what: "clear weeks", sql: `DELETE FROM insight_weekly w USING insight_weeks d WHERE w.week = d.week`},
		)
		if err == nil {
			err = tx.QueryRow(ctx, `SELECT count(*), min(week), max(week) + 7 FROM insight_weeks`).Scan(&res.Weeks, &lo, &hi)
		}
		if err != nil {
			return fmt.Errorf("refresh insight: weeks: %w", err)
		}
		if _, err := exec("weeks", insightWeekly, at, lo, hi); err != nil {
			return err
		}
		// The period statistics are exact percentiles over every request of
		// up to a year: at a million requests, seconds of work (mostly the
		// 52-week period), so only when something changed.
		if res.Requests > 0 || first || !last.Equal(week) {
			res.Periods = true
			steps := []step{
				{what: "clear periods", sql: `DELETE FROM insight_period`},
				{what: "periods", sql: insightPeriod, args: []any{week, at, InsightPeriods}},
				{what: "clear failures", sql: `DELETE FROM insight_failures`},
				{what: "failures", sql: insightFailures, args: []any{week, at, InsightPeriods}},
			}
			if err := run(steps...); err != nil {
				return err
			}
		}
		_, err = exec("meta", `INSERT INTO insight_meta (refreshed_at, refreshed_week) VALUES ($1, $2)
			ON CONFLICT (singleton) DO UPDATE SET refreshed_at = EXCLUDED.refreshed_at, refreshed_week = EXCLUDED.refreshed_week`, at, week)
		return err
	})
	return res, err
}

// Durations summarises how long something took for N requests. With N = 0
// the durations are zero and mean nothing.
type Durations struct {
	N             int
	P50, P90, Max time.Duration
}

// RequestStats are the counts and durations of a group of requests.
type RequestStats struct {
	Submitted      int
	AutoApproved   int
	Approved       int // by a person
	Rejected       int
	Withdrawn      int
	Failed         int
	ReachedRunning int
	// Lead is from request to first running.
	Lead Durations
	// Wait is from request to a person's decision (approved or rejected).
	Wait Durations
}

// AutoShare is the share of requests the policy approved without a person, 0..1.
func (r RequestStats) AutoShare() float64 {
	if r.Submitted == 0 {
		return 0
	}
	return float64(r.AutoApproved) / float64(r.Submitted)
}

// Showback is what VMs used while running.
type Showback struct {
	// ActiveVMs is how many VMs ran during the week; for a period, the
	// largest weekly figure.
	ActiveVMs      int
	VCPUHours      float64
	MemoryGiBHours float64
}

func (u *Showback) add(o Showback) {
	u.ActiveVMs = max(u.ActiveVMs, o.ActiveVMs)
	u.VCPUHours += o.VCPUHours
	u.MemoryGiBHours += o.MemoryGiBHours
}

// InsightWeek is one week of the chosen scope.
type InsightWeek struct {
	Week time.Time
	RequestStats
	Showback
}

// InsightGroup is one team or template over the whole period.
type InsightGroup struct {
	ID   int64
	Name string
	RequestStats
	Showback
}

// FailureCount is how many requests failed for one reason.
type FailureCount struct {
	Reason string
	Count  int
}

// TeamShowback is one team's showback, week by week.
type TeamShowback struct {
	TeamID   int64
	TeamName string
	// Weeks is aligned with Insight.Weeks.
	Weeks []Showback
	Total Showback
}

// InsightQuery chooses the period (one of InsightPeriods, in weeks) and
// optionally one team and one template (0: all).
type InsightQuery struct {
	Weeks      int
	TeamID     int64
	TemplateID int64
}

// Insight is what the insight page shows, as of AsOf.
type Insight struct {
	Query InsightQuery
	// AsOf is when the summary was refreshed; zero if it never was.
	AsOf time.Time
	// Weeks lists every week of the period, oldest first, this week last.
	Weeks []InsightWeek
	// Total is the scope over the whole period.
	Total InsightGroup
	// ByTeam and ByTemplate break the period down (empty when the scope is
	// one team, or one template).
	ByTeam, ByTemplate []InsightGroup
	// Failures are the period's failed requests by reason, most first.
	Failures []FailureCount
	// Showback is per team (only the chosen team, if any), most vCPU-hours first.
	Showback []TeamShowback
}

// Validate reports a period the summary does not keep.
func (q InsightQuery) Validate() error {
	if !slices.Contains(InsightPeriods, q.Weeks) {
		v := &ValidationError{}
		v.Add("weeks", "must be one of %v", InsightPeriods)
		return v
	}
	return nil
}

// scanStats lists the destinations of insightStatsSelect.
func scanStats(dst *RequestStats) []any {
	return []any{&dst.Submitted, &dst.AutoApproved, &dst.Approved, &dst.Rejected, &dst.Withdrawn, &dst.Failed,
		&dst.ReachedRunning, secs{&dst.Lead.P50}, secs{&dst.Lead.P90}, secs{&dst.Lead.Max},
		&dst.Wait.N, secs{&dst.Wait.P50}, secs{&dst.Wait.P90}, secs{&dst.Wait.Max}}
}

// secs scans a nullable number of seconds into a duration (NULL is zero).
type secs struct{ d *time.Duration }

func (s secs) Scan(src any) error {
	switch v := src.(type) {
	case nil:
		*s.d = 0
	case float64:
		*s.d = time.Duration(v * float64(time.Second)).Round(time.Millisecond)
	default:
		return fmt.Errorf("seconds: unexpected %T", src)
	}
	return nil
}

const insightStatsSelect = `submitted, auto_approved, approved, rejected, withdrawn, failed, reached_running,
	lead_p50, lead_p90, lead_max, wait_n, wait_p50, wait_p90, wait_max`

// Insight reads the summary for q. Every query reads a few dozen ready rows.
func (s *Store) Insight(ctx context.Context, q InsightQuery, now time.Time) (Insight, error) {
	if err := q.Validate(); err != nil {
		return Insight{}, err
	}
	in := Insight{Query: q}
	last := WeekOf(now)
	start := last.AddDate(0, 0, -7*(q.Weeks-1))
	index := map[time.Time]int{}
	for w := start; !w.After(last); w = w.AddDate(0, 0, 7) {
		index[w] = len(in.Weeks)
		in.Weeks = append(in.Weeks, InsightWeek{Week: w})
	}
	fail := func(err error) (Insight, error) { return Insight{}, fmt.Errorf("insight: %w", err) }

	b := &pgx.Batch{}
	b.Queue(`SELECT refreshed_at FROM insight_meta`).QueryRow(func(row pgx.Row) error {
		err := row.Scan(&in.AsOf)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		return err
	})
	b.Queue(`SELECT week, `+insightStatsSelect+`, active_vms, vcpu_hours, memory_gib_hours FROM insight_weekly
		WHERE template_id = $1 AND team_id = $2 AND week >= $3 ORDER BY week`, q.TemplateID, q.TeamID, start).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var week time.Time
			var w InsightWeek
			dst := append([]any{&week}, scanStats(&w.RequestStats)...)
			dst = append(dst, &w.ActiveVMs, &w.VCPUHours, &w.MemoryGiBHours)
			if err := rows.Scan(dst...); err != nil {
				return err
			}
			if i, ok := index[week.UTC()]; ok {
				w.Week = in.Weeks[i].Week
				w.Lead.N = w.ReachedRunning
				in.Weeks[i] = w
			}
		}
		return rows.Err()
	})
	b.Queue(`SELECT p.team_id, p.template_id, coalesce(t.name, ''), coalesce(tp.name, ''), `+insightStatsSelect+`
		FROM insight_period p LEFT JOIN teams t ON t.id = p.team_id LEFT JOIN templates tp ON tp.id = p.template_id
		WHERE p.weeks = $1 AND (
			(p.template_id = $2 AND p.team_id = $3) OR
			($3 = 0 AND p.template_id = $2 AND p.team_id <> 0) OR
			($2 = 0 AND p.team_id = $3 AND p.template_id <> 0))`, q.Weeks, q.TemplateID, q.TeamID).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var team, tpl int64
			var teamName, tplName string
			var g InsightGroup
			if err := rows.Scan(append([]any{&team, &tpl, &teamName, &tplName}, scanStats(&g.RequestStats)...)...); err != nil {
				return err
			}
			g.Lead.N = g.ReachedRunning
			switch {
			case team == q.TeamID && tpl == q.TemplateID:
				in.Total = g
			case tpl == q.TemplateID:
				g.ID, g.Name = team, teamName
				in.ByTeam = append(in.ByTeam, g)
			default:
				g.ID, g.Name = tpl, tplName
				in.ByTemplate = append(in.ByTemplate, g)
			}
		}
		return rows.Err()
	})
	b.Queue(`SELECT reason, failures FROM insight_failures WHERE weeks = $1 AND template_id = $2 AND team_id = $3
		ORDER BY failures DESC, reason`, q.Weeks, q.TemplateID, q.TeamID).Query(func(rows pgx.Rows) error {
		var err error
		in.Failures, err = pgx.CollectRows(rows, pgx.RowToStructByPos[FailureCount])
		return err
	})
	showback := map[int64]*TeamShowback{}
	b.Queue(`SELECT w.team_id, t.name, w.week, w.active_vms, w.vcpu_hours, w.memory_gib_hours
		FROM insight_weekly w JOIN teams t ON t.id = w.team_id
		WHERE w.template_id = $1 AND w.team_id <> 0 AND ($2 = 0 OR w.team_id = $2) AND w.week >= $3`,
		q.TemplateID, q.TeamID, start).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var id int64
			var name string
			var week time.Time
			var u Showback
			if err := rows.Scan(&id, &name, &week, &u.ActiveVMs, &u.VCPUHours, &u.MemoryGiBHours); err != nil {
				return err
			}
			i, ok := index[week.UTC()]
			if !ok {
				continue
			}
			tu := showback[id]
			if tu == nil {
				tu = &TeamShowback{TeamID: id, TeamName: name, Weeks: make([]Showback, len(in.Weeks))}
				showback[id] = tu
			}
			tu.Weeks[i] = u
			tu.Total.add(u)
		}
		return rows.Err()
	})
	templateUsage := map[int64]Showback{}
	b.Queue(`SELECT template_id, max(active_vms), sum(vcpu_hours), sum(memory_gib_hours) FROM insight_weekly
		WHERE team_id = $1 AND template_id <> 0 AND week >= $2 AND $3 = 0 GROUP BY template_id`,
		q.TeamID, start, q.TemplateID).Query(func(rows pgx.Rows) error {
		for rows.Next() {
			var id int64
			var u Showback
			if err := rows.Scan(&id, &u.ActiveVMs, &u.VCPUHours, &u.MemoryGiBHours); err != nil {
				return err
			}
			templateUsage[id] = u
		}
		return rows.Err()
	})
	if err := s.pool.SendBatch(ctx, b).Close(); err != nil {
		return fail(err)
	}
	for _, w := range in.Weeks {
		in.Total.Showback.add(w.Showback)
	}
	for i, g := range in.ByTeam {
		if tu := showback[g.ID]; tu != nil {
			in.ByTeam[i].Showback = tu.Total
		}
	}
	for i, g := range in.ByTemplate {
		in.ByTemplate[i].Showback = templateUsage[g.ID]
	}
	for _, tu := range showback {
		in.Showback = append(in.Showback, *tu)
	}
	slices.SortFunc(in.Showback, func(a, b TeamShowback) int {
		if a.Total.VCPUHours != b.Total.VCPUHours {
			if a.Total.VCPUHours > b.Total.VCPUHours {
				return -1
			}
			return 1
		}
		return int(a.TeamID - b.TeamID)
	})
	byName := func(a, b InsightGroup) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	}
	slices.SortFunc(in.ByTeam, byName)
	slices.SortFunc(in.ByTemplate, byName)
	return in, nil
}
