package store

import (
	"context"
	"fmt"
	"strings"

	"github.com/jackc/pgx/v5"
)

// RequestPageFilter selects one page of the VM list: filtered, sorted, with
// offset paging (the list is sorted on other columns than its key).
type RequestPageFilter struct {
	// TeamID narrows to one team; -1 matches none (a developer without a team).
	TeamID      int64
	RequesterID int64
	State       State
	// Sort is "name", "state", "template", "team" or "created" (the default).
	Sort string
	// Asc sorts ascending; the default is descending.
	Asc    bool
	Offset int
	// Limit bounds the page; 0 means 50, at most 500.
	Limit int
}

// requestSortColumns maps a sort key to its column; the id breaks ties so
// that pages never overlap.
var requestSortColumns = map[string]string{
	"name": "r.name", "state": "r.state", "template": "tp.name", "team": "t.name", "created": "r.id",
}

// RequestCountCap bounds how far RequestPage counts: a team's history runs
// to hundreds of thousands of requests, and counting them all for every
// page view would cost more than the page.
const RequestCountCap = 1000

// RequestPage lists one page of requests, how many match in all (counted up
// to RequestCountCap; a total above it means "more than that"; 0 for a page
// without rows) and whether a further page follows, in one statement. Its
// requests carry what the VM list shows and no more: ID, Name, State,
// TemplateID, TemplateName, TemplateVersion, TeamID, TeamName,
// RequesterLogin, Pool, CreatedAt, and a VM (when there is one) with only
// its IP. Reading and decoding every column of fifty rows was a
// sixth of the portal's CPU on that page.
func (s *Store) RequestPage(ctx context.Context, f RequestPageFilter) ([]Request, int, bool, error) {
	var where []string
	var args []any
	add := func(cond string, arg any) {
		args = append(args, arg)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	// The team, requester and state are written into the text (see
	// idLiteral): the count and the page are then planned once per
	// connection.
	if f.TeamID != 0 {
		where = append(where, "r.team_id = "+idLiteral(f.TeamID))
	}
	if f.RequesterID != 0 {
		where = append(where, "r.requester_id = "+idLiteral(f.RequesterID))
	}
	if lit, ok := stateLiteral(f.State); ok {
		where = append(where, "r.state = "+lit)
	} else if f.State != "" {
		add("r.state = $%d", string(f.State))
	}
	w := ""
	if len(where) > 0 {
		w = " WHERE " + strings.Join(where, " AND ")
	}
	col, ok := requestSortColumns[f.Sort]
	if !ok {
		col = "r.id"
	}
	dir := "DESC"
	if f.Asc {
		dir = "ASC"
	}
	if f.Limit <= 0 || f.Limit > 500 {
		f.Limit = 50
	}
	// The count is a column of the page's one statement (run once, as an
	// InitPlan); a page without rows counts nothing.
	var total int
	rows, _ := s.pool.Query(ctx, fmt.Sprintf(requestRowSelect, w, RequestCountCap+1)+w+
		fmt.Sprintf(" ORDER BY %s %s, r.id %s LIMIT %d OFFSET %d", col, dir, dir, f.Limit+1, max(f.Offset, 0)), args...)
	rs, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Request, error) { return scanRequestRow(row, &total) })
	if err != nil {
		return nil, 0, false, fmt.Errorf("list requests: %w", err)
	}
	more := len(rs) > f.Limit
	if more {
		rs = rs[:f.Limit]
	}
	return rs, total, more, nil
}

// requestRowSelect reads what RequestPage returns and, in every row, the
// count of the requests matching the page's conditions (its first %s) up
// to the cap (%d).
const requestRowSelect = `
	SELECT r.id, r.name, r.state, r.template_id, tp.name, r.template_version, r.team_id, t.name, u.login, r.pool,
	       r.created_at, v.ip, (SELECT count(*) FROM (SELECT 1 FROM requests r%s LIMIT %d) capped)
	FROM requests r
	JOIN teams t ON t.id = r.team_id
	JOIN users u ON u.id = r.requester_id
	JOIN templates tp ON tp.id = r.template_id
	LEFT JOIN vms v ON v.request_id = r.id`

func scanRequestRow(row pgx.CollectableRow, total *int) (Request, error) {
	var r Request
	var ip *string
	err := row.Scan(&r.ID, &r.Name, &r.State, &r.TemplateID, &r.TemplateName, &r.TemplateVersion, &r.TeamID, &r.TeamName,
		&r.RequesterLogin, &r.Pool, &r.CreatedAt, &ip, total)
	if ip != nil {
		r.VM = &VM{IP: *ip}
	}
	return r, err
}

// PoolIPs lists the addresses of the members of each pool in ids, by
// member name; members without an address yet are left out.
func (s *Store) PoolIPs(ctx context.Context, ids []int64) (map[int64][]string, error) {
	out := map[int64][]string{}
	if len(ids) == 0 {
		return out, nil
	}
	rows, err := s.pool.Query(ctx, `SELECT request_id, ip FROM pool_members WHERE request_id = ANY($1) AND ip <> '' ORDER BY request_id, name`, ids)
	if err != nil {
		return nil, fmt.Errorf("pool addresses: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var id int64
		var ip string
		if err := rows.Scan(&id, &ip); err != nil {
			return nil, fmt.Errorf("pool addresses: %w", err)
		}
		out[id] = append(out[id], ip)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pool addresses: %w", err)
	}
	return out, nil
}
