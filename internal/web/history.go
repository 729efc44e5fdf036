package web

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"paddock/internal/store"
)

// historyPageSize is how many requests one history page lists.
const historyPageSize = 50

// historyForm is the history filter as typed, kept to fill the form again.
type historyForm struct {
	Team, Requester, Template, State, From, To, Q string
	// Sort is a column of store.HistorySorts, "" for the time of the
	// request; Asc sorts ascending (the default is descending).
	Sort string
	Asc  bool
}

// values renders the form as a query string, empty fields left out.
func (f historyForm) values() url.Values {
	v := url.Values{}
	for k, s := range map[string]string{"team": f.Team, "requester": f.Requester, "template": f.Template,
		"state": f.State, "from": f.From, "to": f.To, "q": f.Q, "sort": f.Sort} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if f.Asc {
		v.Set("dir", "asc")
	}
	return v
}

// filterValues is values without the sort, for the filter form's own
// hidden fields to add back.
func (f historyForm) filterValues() url.Values {
	f.Sort, f.Asc = "", false
	return f.values()
}

// sortedOn reports whether the history is sorted on key ("created" is the
// time of the request, the default).
func (f historyForm) sortedOn(key string) bool {
	return f.Sort == key || f.Sort == "" && key == "created"
}

// sortURL is the link of a column's header: the first page sorted on it,
// ascending for words and newest first for time, or reversed when it is
// sorted on it already; the filters stay.
func (f historyForm) sortURL(key string) string {
	asc := key != "created"
	if f.sortedOn(key) {
		asc = !f.Asc
	}
	f.Sort, f.Asc = key, asc
	if key == "created" {
		f.Sort = ""
	}
	if q := f.values().Encode(); q != "" {
		return "/history?" + q
	}
	return "/history"
}

// ariaSort is the aria-sort of a column's header.
func (f historyForm) ariaSort(key string) string {
	switch {
	case !f.sortedOn(key):
		return "none"
	case f.Asc:
		return "ascending"
	}
	return "descending"
}

// sortArrow shows the direction of the sorted column.
func (f historyForm) sortArrow(key string) string {
	switch f.ariaSort(key) {
	case "ascending":
		return " ▲"
	case "descending":
		return " ▼"
	}
	return ""
}

// sortLabel says how the history is sorted, for its caption and scope.
func (f historyForm) sortLabel() string {
	names := map[string]string{"name": "name", "team": "team", "requester": "requester", "template": "template", "state": "state"}
	switch {
	case f.Sort == "" && f.Asc:
		return "oldest first"
	case f.Sort == "":
		return "newest first"
	case f.Asc:
		return "by " + names[f.Sort] + " (A to Z), newest first within each"
	}
	return "by " + names[f.Sort] + " (Z to A), newest first within each"
}

type historyView struct {
	Base   base
	Form   historyForm
	Errors *store.ValidationError
	// Teams is nil when the user sees only their own team (TeamName).
	Teams     []string
	TeamName  string
	Templates []string
	States    []store.State
	// Rows carry who decided each request (Decider).
	Rows []store.HistoryRow
	// Paged is true past the first page.
	Paged bool
	// Total is how many requests match, counted up to store.RequestCountCap.
	Total    int
	FirstURL string
	NextURL  string
	// NewerURL is the page before this one, when there is one.
	NewerURL string
	CSVURL   string
}

func (v historyView) err(field string) string { return v.Errors.For(field) }

var historyStates = []store.State{store.StatePendingApproval, store.StateApproved, store.StateProvisioning,
	store.StateRunning, store.StateStopped, store.StateFailed, store.StateRejected, store.StateExpired, store.StateDeleted}

// historyFilter reads the filter of a history page or export from the
// query string, narrowed to what u may see. Bad values come back as a
// *store.ValidationError naming the field; the choices are for the form.
func (s *Server) historyFilter(ctx context.Context, u store.User, q url.Values) (historyForm, store.HistoryFilter, historyView, error) {
	form := historyForm{Team: strings.TrimSpace(q.Get("team")), Requester: strings.TrimSpace(q.Get("requester")),
		Template: q.Get("template"), State: q.Get("state"), From: q.Get("from"), To: q.Get("to"), Q: strings.TrimSpace(q.Get("q")),
		Sort: q.Get("sort"), Asc: q.Get("dir") == "asc"}
	// An unknown column sorts on time, as a link from an older version might ask.
	if !slices.Contains(store.HistorySorts, form.Sort) {
		form.Sort = ""
	}
	var f store.HistoryFilter
	var v historyView
	bad := &store.ValidationError{}
	templates, err := s.store.TemplateNames(ctx)
	if err != nil {
		return form, f, v, err
	}
	for _, t := range templates {
		v.Templates = append(v.Templates, t.Name)
		if t.Name == form.Template {
			f.TemplateID = t.ID
		}
	}
	if form.Template != "" && f.TemplateID == 0 {
		bad.Add("template", "no template is named %q", form.Template)
	}
	if canPickHistoryTeam(u) {
		teams, err := s.store.Teams(ctx)
		if err != nil {
			return form, f, v, err
		}
		for _, t := range teams {
			v.Teams = append(v.Teams, t.Name)
			if t.Name == form.Team {
				f.TeamID = t.ID
			}
		}
		if form.Team != "" && f.TeamID == 0 {
			bad.Add("team", "no team is named %q", form.Team)
		}
	} else {
		form.Team, v.TeamName = "", u.TeamName
	}
	if form.Requester != "" {
		r, err := s.store.UserByLogin(ctx, form.Requester)
		switch {
		case errors.Is(err, store.ErrNotFound), err == nil && !canPickHistoryTeam(u) && (u.TeamID == nil || r.TeamID == nil || *r.TeamID != *u.TeamID):
			bad.Add("requester", "nobody you can see has the login %q", form.Requester)
		case err != nil:
			return form, f, v, err
		default:
			f.RequesterID = r.ID
		}
	}
	f.State = store.State(form.State)
	if form.From != "" {
		if f.From, err = time.Parse(time.DateOnly, form.From); err != nil {
			bad.Add("from", "must be a date like 2026-03-31")
		}
	}
	if form.To != "" {
		to, err := time.Parse(time.DateOnly, form.To)
		if err != nil {
			bad.Add("to", "must be a date like 2026-03-31")
		} else {
			f.To = to.AddDate(0, 0, 1) // the whole day
		}
	}
	f.Q, f.Sort, f.Asc = form.Q, form.Sort, form.Asc
	if a := q.Get("after"); a != "" {
		c, err := store.ParseCursor(a)
		if err != nil {
			bad.Add("after", "this page link is damaged; start again from the first page")
		} else {
			f.After = &c
		}
	}
	var fv *store.ValidationError
	if errors.As(f.Validate(), &fv) {
		for _, fe := range fv.Fields {
			if bad.For(fe.Field) == "" {
				bad.Fields = append(bad.Fields, fe)
			}
		}
	}
	return form, historyScope(u, f), v, bad.OrNil()
}

// history lists requests, newest first, with filters and keyset pages.
func (s *Server) history(w http.ResponseWriter, r *http.Request) error {
	u, _ := userFrom(r.Context())
	form, f, v, err := s.historyFilter(r.Context(), u, r.URL.Query())
	var bad *store.ValidationError
	if err != nil && !errors.As(err, &bad) {
		return err
	}
	v.Base, v.Form, v.States = s.viewBase(r, "History"), form, historyStates
	query := form.values()
	v.FirstURL = "/history?" + query.Encode()
	v.CSVURL = "/history.csv?" + form.filterValues().Encode()
	if bad != nil {
		v.Errors = bad
		return render(w, r, http.StatusUnprocessableEntity, historyPage(v))
	}
	f.Limit = historyPageSize
	var page store.HistoryPage
	var next *store.Cursor
	newer := f.After != nil // a page past the first has newer rows
	if b := r.URL.Query().Get("before"); b != "" && f.After == nil {
		c, err := store.ParseCursor(b)
		if err != nil {
			return errStatus(http.StatusUnprocessableEntity, "This page link is damaged; start again from the first page.")
		}
		if page, err = s.store.HistoryNewer(r.Context(), f, c); err != nil {
			return err
		}
		newer = page.Newer
		if len(page.Rows) > 0 {
			// Reached from an older page: there is one.
			c := page.Rows[len(page.Rows)-1].CursorIn(f.Sort)
			next = &c
		}
	} else {
		if page, err = s.store.History(r.Context(), f); err != nil {
			return err
		}
		next = page.Next
	}
	rows := page.Rows
	v.Rows, v.Paged, v.Total = rows, newer, page.Total
	if next != nil {
		query.Set("after", next.String())
		v.NextURL = "/history?" + query.Encode()
		query.Del("after")
	}
	if newer && len(rows) > 0 {
		query.Set("before", rows[0].CursorIn(f.Sort).String())
		v.NewerURL = "/history?" + query.Encode()
	}
	return render(w, r, http.StatusOK, historyPage(v))
}

// historyCSVFlushEvery is how many rows the export writes between flushes.
const historyCSVFlushEvery = 500

// historyCSV streams every request the filter matches as CSV, newest first,
// a row at a time: memory stays the same for ten rows or a million.
func (s *Server) historyCSV(w http.ResponseWriter, r *http.Request) error {
	u, _ := userFrom(r.Context())
	_, f, _, err := s.historyFilter(r.Context(), u, r.URL.Query())
	var bad *store.ValidationError
	if errors.As(err, &bad) {
		return errStatus(http.StatusUnprocessableEntity, "The filter is not valid: "+bad.Error()+".")
	}
	if err != nil {
		return err
	}
	f.After = nil // an export is of the whole filtered history
	h := w.Header()
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Content-Disposition", `attachment; filename="paddock-history-`+time.Now().UTC().Format("20060102-150405")+`.csv"`)
	h.Set("Cache-Control", "no-store")
	rc := http.NewResponseController(w)
	out := &sentWriter{w: w}
	cw := csv.NewWriter(out)
	// The server's write timeout is for pages; a large export gets more
	// time for as long as it keeps moving.
	_ = rc.SetWriteDeadline(time.Now().Add(time.Minute))
	if err := cw.Write(historyCSVHeader); err != nil {
		return err
	}
	n := 0
	err = s.store.ExportHistory(r.Context(), f, func(row store.HistoryRow) error {
		if err := cw.Write(historyCSVRecord(row)); err != nil {
			return err
		}
		if n++; n%historyCSVFlushEvery == 0 {
			cw.Flush()
			if err := cw.Error(); err != nil {
				return err
			}
			_ = rc.Flush()
			_ = rc.SetWriteDeadline(time.Now().Add(time.Minute))
		}
		return nil
	})
	if err == nil {
		cw.Flush()
		return cw.Error()
	}
	if !out.sent {
		// Nothing has gone out: an error page can still be shown, as a page.
		h.Del("Content-Disposition")
		return err
	}
	// Part of the file has gone out. Cut the connection, so that the
	// download fails rather than looking complete.
	s.log.ErrorContext(r.Context(), "history export failed", "rows", n, "err", err)
	panic(http.ErrAbortHandler)
}

// sentWriter notes whether anything was written through it.
type sentWriter struct {
	w    io.Writer
	sent bool
}

func (s *sentWriter) Write(p []byte) (int, error) {
	s.sent = true
	return s.w.Write(p)
}

var historyCSVHeader = []string{"id", "created_at", "team", "requester", "template", "template_version", "size",
	"vcpu", "memory_mib", "name", "lease_days", "state", "state_reason", "decision", "expires_at", "justification"}

// historyCSVRecord is one CSV row; every text cell a person typed, or that
// quotes what one typed, is defused (csvCell).
func historyCSVRecord(h store.HistoryRow) []string {
	return []string{
		strconv.FormatInt(h.ID, 10), h.CreatedAt.UTC().Format(time.RFC3339Nano), csvCell(h.TeamName),
		csvCell(h.RequesterLogin), csvCell(h.TemplateName), strconv.Itoa(h.TemplateVersion), csvCell(h.Size),
		strconv.Itoa(h.VCPU), strconv.Itoa(h.MemoryMiB), csvCell(h.Name), strconv.Itoa(h.LeaseDays),
		string(h.State), csvCell(h.StateReason), csvCell(h.Decision), h.ExpiresAt.UTC().Format(time.RFC3339),
		csvCell(h.Justification),
	}
}

// historyTotal says how many requests match: exactly up to the store's
// count cap, "more than" it beyond.
func historyTotal(n int) string {
	if n > store.RequestCountCap {
		return "More than " + nouns(store.RequestCountCap, "request matches", "requests match") + "."
	}
	return nouns(n, "request matches", "requests match") + "."
}

// pagerLabels name the links to the pages before and after this one in
// the order of the page: newer and older in time, else previous and next.
func (f historyForm) pagerLabels() (before, after string) {
	switch {
	case f.Sort == "" && !f.Asc:
		return "← Newer", "Older →"
	case f.Sort == "":
		return "← Older", "Newer →"
	}
	return "← Previous page", "Next page →"
}

// historyScopeLabel says whose history the page lists.
func historyScopeLabel(v historyView) string {
	if v.Teams == nil {
		if v.TeamName == "" {
			return "You are not in a team, so there is no history to show."
		}
		return fmt.Sprintf("Every request of team %s, %s.", v.TeamName, v.Form.sortLabel())
	}
	return "Every request of every team, " + v.Form.sortLabel() + "."
}

// decisionReason is the reason of a decision without the verdict and
// decider it repeats: "auto-approved: within quota" reads "within quota"
// beside "policy (approved)", "rejected by manager: too big" reads "too big".
func decisionReason(d store.Decider) string {
	return verdictCut(d.Reason, d.Actor)
}
