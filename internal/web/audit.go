package web

import (
	"encoding/csv"
	"net/http"
	"strconv"
	"strings"
	"time"

	"paddock/internal/store"
)

type auditView struct {
	Base    base
	Entries []store.AuditEntry
	Actor   string
	Action  string
	Target  string
	Actions []string
	Next    string
	CSV     string
}

func auditFilter(r *http.Request) store.AuditFilter {
	q := r.URL.Query()
	f := store.AuditFilter{Actor: strings.TrimSpace(q.Get("actor")), Action: q.Get("action"), Target: strings.TrimSpace(q.Get("target"))}
	f.Before, _ = strconv.ParseInt(q.Get("before"), 10, 64)
	return f
}

// auditLog shows the audit log, newest first, to managers and the platform team.
func (s *Server) auditLog(w http.ResponseWriter, r *http.Request) error {
	f := auditFilter(r)
	const page = 100
	f.Limit = page
	es, err := s.store.AuditLog(r.Context(), f)
	if err != nil {
		return err
	}
	actions, err := s.store.AuditActions(r.Context())
	if err != nil {
		return err
	}
	q := r.URL.Query()
	q.Del("before")
	v := auditView{Base: s.viewBase(r, "Audit log"), Entries: es, Actor: f.Actor, Action: f.Action, Target: f.Target,
		Actions: actions, CSV: "/audit.csv?" + q.Encode()}
	if len(es) == page {
		q.Set("before", strconv.FormatInt(es[len(es)-1].ID, 10))
		v.Next = "/audit?" + q.Encode()
	}
	return render(w, r, http.StatusOK, auditPage(v))
}

// auditExport streams the (filtered) audit log as CSV, oldest first. The
// export itself is audited.
func (s *Server) auditExport(w http.ResponseWriter, r *http.Request) error {
	u, _ := userFrom(r.Context())
	f := auditFilter(r)
	if err := s.store.Audit(r.Context(), nil, store.UserActor(u), "audit_export", "audit_log",
		map[string]any{"actor": f.Actor, "action": f.Action, "target": f.Target}); err != nil {
		return err
	}
	w.Header().Set("Content-Type", "text/csv; charset=utf-8")
	w.Header().Set("Content-Disposition", `attachment; filename="paddock-audit-`+time.Now().UTC().Format("20060102-150405")+`.csv"`)
	w.Header().Set("Cache-Control", "no-store")
	cw := csv.NewWriter(w)
	if err := cw.Write([]string{"id", "at", "actor_id", "actor", "action", "target", "details"}); err != nil {
		return err
	}
	err := s.store.EachAuditEntry(r.Context(), f, func(e store.AuditEntry) error {
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
