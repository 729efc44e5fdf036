package web

import (
	"errors"
	"math"
	"net/http"
	"strconv"
	"strings"

	"github.com/go-chi/chi/v5"

	"paddock/internal/store"
)

// platformQuotas lists every team with its usage and editable quota.
func (s *Server) platformQuotas(w http.ResponseWriter, r *http.Request) error {
	v, err := s.quotasView(r, nil)
	if err != nil {
		return err
	}
	q := r.URL.Query()
	for _, t := range v.Teams {
		if name := q.Get("saved"); name != "" && t.Name == name {
			v.Saved = "Saved the quota of team " + name + "."
		}
		if q.Get("edit") == t.ID {
			v.Edit = &t
		}
	}
	return render(w, r, http.StatusOK, quotasPage(v))
}

// quotasView builds the page; failed is a team whose form was refused,
// shown again as typed with its errors.
func (s *Server) quotasView(r *http.Request, failed *quotaTeam) (quotasView, error) {
	all, err := s.store.TeamQuotas(r.Context())
	if err != nil {
		return quotasView{}, err
	}
	v := quotasView{Base: s.viewBase(r, "Team quotas")}
	for _, t := range all {
		qt := quotaTeamOf(t)
		if failed != nil && failed.ID == qt.ID {
			qt.Form, qt.Errors = failed.Form, failed.Errors
			v.Edit = &qt
		}
		if len(qt.Over) > 0 {
			v.Over++
		}
		v.Teams = append(v.Teams, qt)
	}
	sortQuotaTeams(v.Teams)
	return v, nil
}

// quotaSave replaces one team's quota; an empty field lifts that limit.
func (s *Server) quotaSave(w http.ResponseWriter, r *http.Request) error {
	teamID, err := strconv.ParseInt(chi.URLParam(r, "teamID"), 10, 64)
	if err != nil {
		return errNotFound
	}
	team, err := s.store.TeamByID(r.Context(), teamID)
	if err != nil {
		return err
	}
	f := quotaForm{VCPU: r.PostFormValue("vcpu"), MemoryGiB: r.PostFormValue("memoryGiB"), VMs: r.PostFormValue("vms"), DiskGiB: r.PostFormValue("diskGiB")}
	q := store.Quota{TeamID: teamID}
	verr := &store.ValidationError{}
	q.VCPU = parseLimit(f.VCPU, 1, "vcpu", verr)
	q.MemoryMiB = parseLimit(f.MemoryGiB, 1024, "memoryGiB", verr)
	q.VMs = parseLimit(f.VMs, 1, "vms", verr)
	q.DiskGiB = parseLimit(f.DiskGiB, 1, "diskGiB", verr)
	if len(verr.Fields) == 0 {
		u, _ := userFrom(r.Context())
		err = s.store.SetTeamQuota(r.Context(), q, store.UserActor(u))
		if !errors.As(err, &verr) {
			if err != nil {
				return err
			}
			http.Redirect(w, r, "/platform/quotas?saved="+team.Name, http.StatusSeeOther)
			return nil
		}
	}
	v, err := s.quotasView(r, &quotaTeam{ID: strconv.FormatInt(teamID, 10), Form: f, Errors: verr})
	if err != nil {
		return err
	}
	v.Base.URL = "/platform/quotas"
	return render(w, r, http.StatusUnprocessableEntity, quotasPage(v))
}

// parseLimit reads one limit in units of unit (1024 for GiB of memory
// stored in MiB); "" is no limit.
func parseLimit(s string, unit int, field string, v *store.ValidationError) *int {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil
	}
	f, err := strconv.ParseFloat(s, 64)
	n := f * float64(unit)
	if err != nil || f < 0 || n != math.Trunc(n) || n > store.MaxQuota*float64(unit) {
		v.Add(field, "must be a whole number from 0 to %d, or empty for no limit", store.MaxQuota)
		return nil
	}
	i := int(n)
	return &i
}
