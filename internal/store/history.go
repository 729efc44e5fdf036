package store

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// HistoryFilter selects requests for the history pages and their CSV export.
// Zero fields match everything.
type HistoryFilter struct {
	TeamID      int64
	RequesterID int64
	TemplateID  int64
	State       State
	// From and To bound created_at: From <= created_at < To.
	From, To time.Time
	// Q is searched for, case-insensitively, in the name and the justification.
	Q string
	// After continues a list after this position (keyset paging).
	After *Cursor
	Limit int
	// Sort is a column of HistorySorts, or "" for the time of the request.
	Sort string
	// Asc sorts ascending (oldest first); the default is descending.
	Asc bool
}

// MaxHistoryPage is the largest page History returns.
const MaxHistoryPage = 500

// MaxHistorySearchLen bounds the search text.
const MaxHistorySearchLen = 200

// Cursor is a position in the history's order (newest first): the request
// with this creation time and id, which ties on time are broken by. A cursor
// is a position, not a page of one particular filter: used with other filters
// it continues from the same point in time with those filters.
type Cursor struct {
	CreatedAt time.Time
	ID        int64
	// Key is the row's value of the column the history is sorted on, when
	// it is sorted on another than time (history_sort.go).
	Key string
}

// String encodes the cursor for a URL: microseconds since the epoch (the
// precision PostgreSQL keeps), a dot, and the id; then, in a sorted
// history, a dot and the sort value in URL-safe base64.
func (c Cursor) String() string { return cursorString(c) }

// ParseCursor reads a cursor written by Cursor.String.
func ParseCursor(s string) (Cursor, error) {
	s, key, err := cursorKeyPart(s)
	if err != nil {
		return Cursor{}, err
	}
	us, id, ok := strings.Cut(s, ".")
	micros, err1 := strconv.ParseInt(us, 10, 64)
	n, err2 := strconv.ParseInt(id, 10, 64)
	if !ok || err1 != nil || err2 != nil || n <= 0 {
		return Cursor{}, fmt.Errorf("malformed cursor %q", s)
	}
	return Cursor{CreatedAt: time.UnixMicro(micros).UTC(), ID: n, Key: key}, nil
}

// HistoryRow is one request as the history lists and exports it.
type HistoryRow struct {
	ID              int64
	CreatedAt       time.Time
	TeamName        string
	RequesterLogin  string
	TemplateName    string
	TemplateVersion int
	Size            string
	VCPU            int
	MemoryMiB       int
	Name            string
	LeaseDays       int
	Justification   string
	State           State
	StateReason     string
	Decision        string
	ExpiresAt       time.Time
	// Decider is who first decided the request, nil while nobody has. The
	// pages (History, HistoryNewer) fill it; the export does not.
	Decider *Decider
}

// HistoryPage is one page of the history.
type HistoryPage struct {
	Rows []HistoryRow
	// Total is how many requests match the filter, its cursor aside,
	// counted up to RequestCountCap: a total above it means "more than
	// that", which is as far as counting stays cheap on a long history. A
	// page without rows counts nothing (0).
	Total int
	// Next is the cursor of the page after this one (History); nil on the
	// last page.
	Next *Cursor
	// Newer says there are rows before these still (HistoryNewer).
	Newer bool
}

// Cursor is the position of the row, for the next page.
func (h HistoryRow) Cursor() Cursor { return Cursor{CreatedAt: h.CreatedAt, ID: h.ID} }

// Validate reports filter values the store cannot use.
func (f HistoryFilter) Validate() error {
	v := &ValidationError{}
	if !f.From.IsZero() && !f.To.IsZero() && !f.From.Before(f.To) {
		v.Add("to", "must be on or after the from date")
	}
	if len([]rune(f.Q)) > MaxHistorySearchLen {
		v.Add("q", "must be at most %d characters", MaxHistorySearchLen)
	}
	if f.State != "" && !validState(f.State) {
		v.Add("state", "is not a request state")
	}
	if !validSort(f.Sort) {
		v.Add("sort", "is not a column the history sorts on")
	}
	return v.OrNil()
}

func validState(s State) bool {
	switch s {
	case StatePendingApproval, StateApproved, StateProvisioning, StateRunning, StateStopped,
		StateFailed, StateRejected, StateExpired, StateDeleted:
		return true
	}
	return false
}

// historyWhere renders the filter as SQL conditions on requests r, with
// their arguments. Each condition has an index in page order, (column,
// created_at DESC, id DESC) (migrations 0001 and 0005), except the search
// text, which has a trigram index.
func historyWhere(f HistoryFilter) (string, []any) {
	var where []string
	var args []any
	// add appends a condition whose ? placeholders take vals in order.
	add := func(cond string, vals ...any) {
		for _, v := range vals {
			args = append(args, v)
			cond = strings.Replace(cond, "?", "$"+strconv.Itoa(len(args)), 1)
		}
		where = append(where, cond)
	}
	// Ids and the state are written into the text (see idLiteral): a page
	// filtered by nothing else is planned once per connection.
	if f.TeamID != 0 {
		where = append(where, "r.team_id = "+idLiteral(f.TeamID))
	}
	if f.RequesterID != 0 {
		where = append(where, "r.requester_id = "+idLiteral(f.RequesterID))
	}
	if f.TemplateID != 0 {
		where = append(where, "r.template_id = "+idLiteral(f.TemplateID))
	}
	if lit, ok := stateLiteral(f.State); ok {
		where = append(where, "r.state = "+lit)
	} else if f.State != "" {
		add("r.state = ?", string(f.State))
	}
	if !f.From.IsZero() {
		add("r.created_at >= ?", f.From)
	}
	if !f.To.IsZero() {
		add("r.created_at < ?", f.To)
	}
	if q := strings.TrimSpace(f.Q); q != "" {
		// The expression is the one the trigram index is built on.
		add(`(r.name || ' ' || r.justification) ILIKE ?`, "%"+escapeLike(q)+"%")
	}
	if f.After != nil {
		cond, vals := cursorCond(f, *f.After, false)
		add(cond, vals...)
	}
	if len(where) == 0 {
		return "true", args
	}
	return strings.Join(where, " AND "), args
}

// escapeLike makes s match itself in a LIKE pattern.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

// historySelect finds the page's rows in an inner query that reads only the
// indexed columns, then fetches what the page shows for those rows alone,
// with the names from joins, who first decided each request (firstDecision)
// and, in every row, the capped count of what the filter matches or NULL
// (historyPageSQL). (Scalar subqueries for the names plan faster, 0.4 ms against
// 0.7 ms here, but PostgreSQL runs each as a scan of its whole small table
// for every row: 0.65 ms for a page against 0.15 ms, and more the more
// users there are; and a page filtered by ids and state alone is planned
// once per connection, see historyQuery.)
const historySelect = `
	SELECT r.id, r.created_at, t.name, u.login, tp.name,
	       r.template_version, r.size, r.vcpu, r.memory_mib, r.name, r.lease_days, r.justification, r.state,
	       r.state_reason, r.decision, r.expires_at, d.actor, d.verdict, d.reason, d.at, %s
	FROM requests r
	JOIN teams t ON t.id = r.team_id JOIN users u ON u.id = r.requester_id JOIN templates tp ON tp.id = r.template_id
	LEFT JOIN LATERAL (` + firstDecision + `) d ON true
	WHERE r.id = ANY (ARRAY(SELECT r.id FROM requests r%s WHERE %s ORDER BY %s %s))
	ORDER BY %s`

// historyExportSelect is historySelect for any number of rows, streamed.
const historyExportSelect = `
	SELECT r.id, r.created_at, t.name, u.login, tp.name,
	       r.template_version, r.size, r.vcpu, r.memory_mib, r.name, r.lease_days, r.justification, r.state,
	       r.state_reason, r.decision, r.expires_at
	FROM requests r
	JOIN teams t ON t.id = r.team_id JOIN users u ON u.id = r.requester_id JOIN templates tp ON tp.id = r.template_id
	WHERE %s
	ORDER BY r.created_at DESC, r.id DESC`

func scanHistoryRow(row pgx.CollectableRow) (HistoryRow, error) {
	var h HistoryRow
	err := row.Scan(h.fields()...)
	return h, err
}

// fields are the destinations of historyExportSelect's columns, which
// historySelect's begin with.
func (h *HistoryRow) fields() []any {
	return []any{&h.ID, &h.CreatedAt, &h.TeamName, &h.RequesterLogin, &h.TemplateName, &h.TemplateVersion,
		&h.Size, &h.VCPU, &h.MemoryMiB, &h.Name, &h.LeaseDays, &h.Justification, &h.State, &h.StateReason,
		&h.Decision, &h.ExpiresAt}
}

// collectHistoryPage reads the rows of historySelect and the count they
// all carry, nil when the statement did not count.
func collectHistoryPage(rows pgx.Rows) ([]HistoryRow, *int, error) {
	var total *int
	hs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (HistoryRow, error) {
		var h HistoryRow
		var actor, verdict, reason *string
		var at *time.Time
		err := row.Scan(append(h.fields(), &actor, &verdict, &reason, &at, &total)...)
		if err == nil && actor != nil && verdict != nil && at != nil {
			h.Decider = &Decider{RequestID: h.ID, Actor: *actor, Verdict: State(*verdict), Reason: deref(reason), At: *at}
		}
		return h, err
	})
	return hs, total, err
}

// History returns one page of requests matching f, newest first, each
// with who decided it, with the count of what matches and the cursor of
// the next page: one statement, and a second for the count when f has a
// search or dates (historyPageSQL).
func (s *Store) History(ctx context.Context, f HistoryFilter) (HistoryPage, error) {
	if err := f.Validate(); err != nil {
		return HistoryPage{}, err
	}
	if f.Limit <= 0 || f.Limit > MaxHistoryPage {
		f.Limit = 50
	}
	q, args := historyQuery(f)
	rows, _ := s.pool.Query(ctx, q, args...)
	hs, counted, err := collectHistoryPage(rows)
	if err != nil {
		return HistoryPage{}, fmt.Errorf("history: %w", err)
	}
	total, err := s.historyTotal(ctx, f, hs, counted)
	if err != nil {
		return HistoryPage{}, err
	}
	p := HistoryPage{Rows: hs, Total: total}
	if len(hs) > f.Limit {
		p.Rows = hs[:f.Limit]
		next := p.Rows[f.Limit-1].CursorIn(f.Sort)
		p.Next = &next
	}
	return p, nil
}

// historyQuery is the query of one page, with its arguments. It asks for
// one row more than the page shows, which tells whether there is a next
// page. It is planned with the actual values every time: how selective a
// team, a state or a search text is decides the plan. Ids and the state are
// in its text (historyWhere), so a page filtered by nothing else is a
// statement of its own, prepared and planned once per connection; one with
// dates, a search or a cursor is sent as an unnamed statement, planned for
// its values on each call. (A search is one query on the trigram index: reading newest first
// in time slices was tried, and lost more where matches are few or old than
// it won where they are many and recent.)
func historyQuery(f HistoryFilter) (string, []any) {
	where, args := historyWhere(f)
	order, join := historyOrder(f, false)
	q := historyPageSQL(f, join, where, order)
	if len(args) == 0 {
		// Nothing but literals: prepared, planned once per connection.
		return q, nil
	}
	return q, append([]any{pgx.QueryExecModeExec}, args...)
}

// historyPageSQL is historySelect for f's page: its rows are those of
// where, in order, with join for the inner query. It counts too when the
// count's conditions (f's without its cursor) are all written into the text
// (ids, a state), so that the count's plan is kept with the page's. A count
// of a search or of dates is left to historyCountQuery, a prepared
// statement of its own as it always was: its cost depends on the pattern
// and on the plan PostgreSQL picks for it (the developer's search in
// make bench-history: 50 ms with its custom plan, a sequential scan, and
// 37 ms with the generic one, a bitmap on the trigram and team indexes),
// and the page's statement is planned afresh for every call.
func historyPageSQL(f HistoryFilter, join, where, order string) string {
	f.After = nil
	count := "NULL::bigint"
	if q, args := historyCountQuery(f); len(args) == 0 {
		count = "(" + q + ")"
	}
	return fmt.Sprintf(historySelect, count, join, where, order, "LIMIT "+strconv.Itoa(f.Limit+1), outerOrder(order))
}

// historyTotal is the count of a page whose statement did not count
// (counted nil), or what it counted; a page without rows counts 0.
func (s *Store) historyTotal(ctx context.Context, f HistoryFilter, rows []HistoryRow, counted *int) (int, error) {
	switch {
	case len(rows) == 0:
		return 0, nil
	case counted != nil:
		return *counted, nil
	}
	var n int
	q, args := historyCountQuery(f)
	if err := s.pool.QueryRow(ctx, q, args...).Scan(&n); err != nil {
		return 0, fmt.Errorf("count the history: %w", err)
	}
	return n, nil
}

// historyCountQuery counts the requests matching a valid f (its cursor
// aside), with its arguments.
func historyCountQuery(f HistoryFilter) (string, []any) {
	f.After = nil
	where, args := historyWhere(f)
	return fmt.Sprintf(`SELECT count(*) FROM (SELECT 1 FROM requests r WHERE %s LIMIT %d) capped`, where, RequestCountCap+1), args
}

// outerOrder is order for the outer query, whose joins are named apart
// from the inner query's: the sort columns of joined tables are named by
// their positions in historySelect instead.
func outerOrder(order string) string {
	return strings.NewReplacer("st.name", "3", "su.login", "4", "stp.name", "5").Replace(order)
}

// historyExportBatch is how many rows the export fetches at a time.
const historyExportBatch = 1000

// ExportHistory calls fn for every request matching f, newest first,
// ignoring f.Limit. Rows come from a server-side cursor a batch at a time, so
// memory stays constant however many rows match; fn may write each row out
// as it comes. The export reads one consistent snapshot.
func (s *Store) ExportHistory(ctx context.Context, f HistoryFilter, fn func(HistoryRow) error) error {
	if err := f.Validate(); err != nil {
		return err
	}
	where, args := historyWhere(f)
	q := fmt.Sprintf(historyExportSelect, where)
	return pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, "DECLARE history_export NO SCROLL CURSOR FOR "+q, args...); err != nil {
			return fmt.Errorf("export history: %w", err)
		}
		fetch := "FETCH " + strconv.Itoa(historyExportBatch) + " FROM history_export"
		for {
			rows, err := tx.Query(ctx, fetch)
			if err != nil {
				return fmt.Errorf("export history: %w", err)
			}
			n := 0
			for rows.Next() {
				h, err := scanHistoryRow(rows)
				if err != nil {
					rows.Close()
					return fmt.Errorf("export history: %w", err)
				}
				n++
				if err := fn(h); err != nil {
					rows.Close()
					return err
				}
			}
			if err := rows.Err(); err != nil {
				return fmt.Errorf("export history: %w", err)
			}
			if n < historyExportBatch {
				return nil
			}
		}
	})
}

// NamedID is a row's id and name, for the choices of a filter.
type NamedID struct {
	ID   int64
	Name string
}

// TemplateNames lists every template ever published, retired ones too, by
// name: history covers requests of templates that are gone.
func (s *Store) TemplateNames(ctx context.Context) ([]NamedID, error) {
	return s.catalog.names.get(ctx, slices.Clone, func(ctx context.Context) ([]NamedID, int64, bool, error) {
		rows, _ := s.pool.Query(ctx, `SELECT id, name, `+catalogVersionColumn+` FROM templates ORDER BY name`)
		var at int64
		ns, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (NamedID, error) {
			var n NamedID
			err := row.Scan(&n.ID, &n.Name, &at)
			return n, err
		})
		if err != nil {
			return nil, 0, false, fmt.Errorf("template names: %w", err)
		}
		return ns, at, len(ns) > 0, nil
	})
}

// ExplainHistory runs the query of one history page under EXPLAIN ANALYZE
// and returns the plan, for the benchmark's report.
func (s *Store) ExplainHistory(ctx context.Context, f HistoryFilter) ([]string, error) {
	if f.Limit <= 0 || f.Limit > MaxHistoryPage {
		f.Limit = 50
	}
	q, args := historyQuery(f)
	rows, _ := s.pool.Query(ctx, "EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY ON) "+q, args...)
	plan, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("explain history: %w", err)
	}
	return plan, nil
}
