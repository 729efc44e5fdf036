package store

import (
	"encoding/base64"
	"fmt"
	"strconv"
	"strings"
)

// HistorySorts are the columns the history sorts on besides the time of the
// request (""): each sorts its rows on that column's value and, within one
// value, newest first.
var HistorySorts = []string{"name", "team", "requester", "template", "state"}

// historySortColumns is each sort's expression, and the join it needs in
// the query that picks a page's ids.
var historySortColumns = map[string]struct{ expr, join string }{
	"name":      {"r.name", ""},
	"team":      {"st.name", " JOIN teams st ON st.id = r.team_id"},
	"requester": {"su.login", " JOIN users su ON su.id = r.requester_id"},
	"template":  {"stp.name", " JOIN templates stp ON stp.id = r.template_id"},
	"state":     {"r.state", ""},
}

// sortKey is the row's value of the column sort sorts on ("" for time).
func (h HistoryRow) sortKey(sort string) string {
	switch sort {
	case "name":
		return h.Name
	case "team":
		return h.TeamName
	case "requester":
		return h.RequesterLogin
	case "template":
		return h.TemplateName
	case "state":
		return string(h.State)
	}
	return ""
}

// CursorIn is the position of the row in a history sorted on sort, for
// the link to the page after (or before) it.
func (h HistoryRow) CursorIn(sort string) Cursor {
	c := h.Cursor()
	c.Key = h.sortKey(sort)
	return c
}

// encodeKey and decodeKey write a cursor's sort value into a URL without
// the dot that separates a cursor's parts.
func encodeKey(k string) string { return base64.RawURLEncoding.EncodeToString([]byte(k)) }

func decodeKey(s string) (string, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	return string(b), err
}

// historyOrder is the ORDER BY of f's sort, read forwards or, for the
// newer page, backwards; the join is for the inner query.
func historyOrder(f HistoryFilter, backwards bool) (order, join string) {
	desc := !f.Asc
	dir := func(d bool) string {
		if d != backwards {
			return "DESC"
		}
		return "ASC"
	}
	col, ok := historySortColumns[f.Sort]
	if !ok {
		return "r.created_at " + dir(desc) + ", r.id " + dir(desc), ""
	}
	// Within one value of the column, newest first.
	return col.expr + " " + dir(desc) + ", r.created_at " + dir(true) + ", r.id " + dir(true), col.join
}

// cursorCond is the condition that keeps the rows after c in f's order (or
// before it, backwards), with ? placeholders for args. The time and id are
// compared as a row, which the indexes in page order serve.
func cursorCond(f HistoryFilter, c Cursor, backwards bool) (string, []any) {
	cmp := func(desc bool) string {
		if desc != backwards {
			return "<"
		}
		return ">"
	}
	col, ok := historySortColumns[f.Sort]
	if !ok {
		return "(r.created_at, r.id) " + cmp(!f.Asc) + " (?, ?)", []any{c.CreatedAt, c.ID}
	}
	return "(" + col.expr + " " + cmp(!f.Asc) + " ? OR " + col.expr + " = ? AND (r.created_at, r.id) " + cmp(true) + " (?, ?))",
		[]any{c.Key, c.Key, c.CreatedAt, c.ID}
}

// validSort reports whether the history sorts on sort.
func validSort(sort string) bool {
	_, ok := historySortColumns[sort]
	return sort == "" || ok
}

// cursorKeyPart splits the sort value off an encoded cursor: "micros.id"
// has none, "micros.id.key" has one.
func cursorKeyPart(s string) (rest, key string, err error) {
	if strings.Count(s, ".") < 2 {
		return s, "", nil
	}
	i := strings.LastIndex(s, ".")
	key, err = decodeKey(s[i+1:])
	if err != nil {
		return "", "", fmt.Errorf("malformed cursor %q", s)
	}
	return s[:i], key, nil
}

// cursorString is Cursor.String with the sort value, when there is one.
func cursorString(c Cursor) string {
	s := strconv.FormatInt(c.CreatedAt.UnixMicro(), 10) + "." + strconv.FormatInt(c.ID, 10)
	if c.Key != "" {
		s += "." + encodeKey(c.Key)
	}
	return s
}
