package web

import (
	"encoding/csv"
	"errors"
	"net/http"
	"strconv"
	"strings"
	"time"

	"paddock/internal/store"
)

type auditView struct {
	Base    base
	Rows    []auditRow
	Actor   string
	Action  string
	Target  string
	From    string
	To      string
	Errors  *store.ValidationError
	Actions []auditAction
	Newer   string
	Older   string
	CSV     string
}

func (v auditView) err(field string) string { return v.Errors.For(field) }

// auditAction is one choice of the action filter: the name the log keeps and
// the words shown.
type auditAction struct{ Code, Words string }

// auditFilter reads the filter from the query string; a date that is not
// one comes back as a *store.ValidationError naming its field.
func auditFilter(r *http.Request) (store.AuditFilter, error) {
	q := r.URL.Query()
	f := store.AuditFilter{Actor: strings.TrimSpace(q.Get("actor")), Action: q.Get("action"), Target: strings.TrimSpace(q.Get("target"))}
	f.Before, _ = strconv.ParseInt(q.Get("before"), 10, 64)
	f.After, _ = strconv.ParseInt(q.Get("after"), 10, 64)
	bad := &store.ValidationError{}
	if s := strings.TrimSpace(q.Get("from")); s != "" {
		t, err := time.Parse(time.DateOnly, s)
		if err != nil {
			bad.Add("from", "must be a date like 2026-03-31")
		}
		f.Since = t
	}
	if s := strings.TrimSpace(q.Get("to")); s != "" {
		t, err := time.Parse(time.DateOnly, s)
		if err != nil {
			bad.Add("to", "must be a date like 2026-03-31")
		} else {
			f.Until = t.AddDate(0, 0, 1) // the whole day
		}
	}
	if !f.Since.IsZero() && !f.Until.IsZero() && !f.Since.Before(f.Until) {
		bad.Add("to", "must not be before From")
	}
	return f, bad.OrNil()
}

// auditPageSize is how many entries one page of the log lists.
const auditPageSize = 100

// auditLog shows the audit log, newest first, to managers and the platform
// team, a page at a time with links to newer and older entries.
func (s *Server) auditLog(w http.ResponseWriter, r *http.Request) error {
	u, _ := userFrom(r.Context())
	f, ferr := auditFilter(r)
	var bad *store.ValidationError
	if ferr != nil && !errors.As(ferr, &bad) {
		return ferr
	}
	actions, err := s.store.AuditActions(r.Context())
	if err != nil {
		return err
	}
	q := r.URL.Query()
	q.Del("before")
	q.Del("after")
	v := auditView{Base: s.viewBase(r, "Audit log"), Actor: f.Actor, Action: f.Action, Target: f.Target,
		From: q.Get("from"), To: q.Get("to"), CSV: "/audit.csv?" + q.Encode()}
	for _, a := range actions {
		v.Actions = append(v.Actions, auditAction{Code: a, Words: auditWords(a)})
	}
	if bad != nil {
		v.Errors = bad
		return render(w, r, http.StatusUnprocessableEntity, auditPage(v))
	}
	f.Limit = auditPageSize
	var es []store.AuditEntry
	if f.After != 0 && f.Before == 0 {
		es, err = s.store.AuditLogNewer(r.Context(), f)
	} else {
		f.After = 0
		es, err = s.store.AuditLog(r.Context(), f)
	}
	if err != nil {
		return err
	}
	if len(es) > 0 {
		// Each link is shown only where it leads to something.
		older, newer := f, f
		older.After, older.Before = 0, es[len(es)-1].ID
		newer.Before, newer.After = 0, es[0].ID
		hasOlder, err := s.store.AuditHasEntry(r.Context(), older)
		if err != nil {
			return err
		}
		hasNewer, err := s.store.AuditHasEntry(r.Context(), newer)
		if err != nil {
			return err
		}
		if hasOlder {
			q.Set("before", strconv.FormatInt(older.Before, 10))
			v.Older = "/audit?" + q.Encode()
			q.Del("before")
		}
		if hasNewer {
			q.Set("after", strconv.FormatInt(newer.After, 10))
			v.Newer = "/audit?" + q.Encode()
		}
	}
	for _, e := range es {
		v.Rows = append(v.Rows, auditRowOf(e, u))
	}
	return render(w, r, http.StatusOK, auditPage(v))
}

// auditExport streams the (filtered) audit log as CSV, oldest first. The
// export itself is audited.
func (s *Server) auditExport(w http.ResponseWriter, r *http.Request) error {
	u, _ := userFrom(r.Context())
	f, err := auditFilter(r)
	var bad *store.ValidationError
	if errors.As(err, &bad) {
		return errStatus(http.StatusUnprocessableEntity, "The filter is not valid: "+bad.Error()+".")
	}
	if err != nil {
		return err
	}
	if err := s.store.Audit(r.Context(), nil, store.UserActor(u), "audit_export", "audit_log",
		map[string]any{"actor": f.Actor, "action": f.Action, "target": f.Target, "from": r.URL.Query().Get("from"), "to": r.URL.Query().Get("to")}); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="paddock-audit-`+time.Now().UTC().Format("20060102-150405")+`.csv"`)
	w.Header().Set("Cache-Control", "no-store")
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"id", "at", "actor_id", "actor", "action", "target", "details"}); err != nil {
		return err
	}
	err = s.store.EachAuditEntry(r.Context(), f, func(e store.AuditEntry) error {
		actorID := ""
		if e.ActorID != nil {
			actorID = strconv.FormatInt(*e.ActorID, 10)
		}
		return cw.Write([]string{strconv.FormatInt(e.ID, 10), e.At.UTC().Format(time.RFC3339Nano), actorID,
			csvCell(e.Actor), csvCell(e.Action), csvCell(e.Target), csvCell(e.DetailsText())})
	})
	cw.Flush()
	if err != nil {
		// The header is sent; all that is left is to log and cut the file short.
		s.log.ErrorContext(r.Context(), "audit export failed", "err", err)
		return nil
	}
	return cw.Error()
}

// csvCell defuses spreadsheet formulas: a cell that a spreadsheet would run
// (starting with = + - @ or a control character) is prefixed with a quote.
func csvCell(s string) string {
	if s != "" && strings.ContainsRune("=+-@\t\r", rune(s[0])) {
		return "'" + s
	}
	return s
}
