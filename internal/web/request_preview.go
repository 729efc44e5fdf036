package web

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"paddock/internal/store"
)

// quotaPreview shows, before submit, the team's quota with what the chosen
// size adds and what policy would decide; nil when there is nothing to show.
func (s *Server) quotaPreview(r *http.Request, teamID int64, t templateCard, form requestForm) (*quotaPanel, error) {
	if len(t.Sizes) == 0 {
		return nil, nil
	}
	size := t.Sizes[0].Name
	for _, sz := range t.Sizes {
		if sz.Name == form.Size {
			size = sz.Name
		}
	}
	lease, err := strconv.Atoi(strings.TrimSpace(form.LeaseDays))
	if err != nil || lease < 1 {
		lease = min(7, t.MaxLeaseDays)
	}
	replicas, err := strconv.Atoi(strings.TrimSpace(form.Replicas))
	if err != nil || replicas < 1 {
		replicas = 1
	}
	p, err := s.store.PreviewRequest(r.Context(), teamID, t.Name, size, lease, replicas)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	qp := quotaPanelOf(p)
	if !qp.Limited {
		return qp, nil
	}
	// Each other size, so that the form can mark those that do not fit
	// before the developer picks one.
	for _, sz := range t.Sizes {
		other := p
		if sz.Name != size {
			other, err = s.store.PreviewRequest(r.Context(), teamID, t.Name, sz.Name, lease, replicas)
			if err != nil {
				return nil, err
			}
		}
		if len(other.Blockers) > 0 {
			if qp.SizeOver == nil {
				qp.SizeOver = map[string]string{}
			}
			qp.SizeOver[sz.Name] = strings.Join(other.Blockers, ", ")
		}
	}
	return qp, nil
}
