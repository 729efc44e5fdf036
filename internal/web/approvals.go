package web

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"paddock/internal/store"
)

// approvals shows the queue of requests and extensions waiting for a person.
func (s *Server) approvals(w http.ResponseWriter, r *http.Request) error {
	v, err := s.approvalsView(r, nil)
	if err != nil {
		return err
	}
	return render(w, r, http.StatusOK, approvalsPage(v))
}

// approvalsView builds the queue; failed is an item whose decision was
// refused, shown again with its comment and the problem.
func (s *Server) approvalsView(r *http.Request, failed *approvalItem) (approvalsView, error) {
	u, _ := userFrom(r.Context())
	q, err := s.store.ApprovalQueue(r.Context())
	if err != nil {
		return approvalsView{}, err
	}
	v := approvalsView{Base: s.viewBase(r, "Approvals")}
	now := time.Now()
	for _, a := range q {
		it := approvalItemOf(u, a, now)
		if failed != nil && failed.A.ID == a.ID {
			it.Comment, it.Error = failed.Comment, failed.Error
		}
		v.Items = append(v.Items, it)
	}
	seen := make([]int64, len(q))
	for i, a := range q {
		seen[i] = a.ID
	}
	v.Live = queueLiveOf(seen, seen, v.Base.Waiting)
	if id, err := strconv.ParseInt(r.URL.Query().Get("decided"), 10, 64); err == nil {
		if a, err := s.store.Approval(r.Context(), id); err == nil && !a.Open() {
			v.Done = fmt.Sprintf("Request #%d (%s): %s.", a.RequestID, a.Request.Name, a.Summary())
		}
	}
	return v, nil
}

// approvalDecide approves or rejects one approval from the queue, then
// returns to the queue. The loser of two approvers acting at once gets 409
// naming who decided first.
func (s *Server) approvalDecide(w http.ResponseWriter, r *http.Request) error {
	a, verdict, err := s.decidable(r)
	if err != nil {
		return err
	}
	comment := r.PostFormValue("comment")
	u, _ := userFrom(r.Context())
	_, err = s.store.DecideApproval(r.Context(), a.ID, u, verdict == "approve", comment)
	var verr *store.ValidationError
	if errors.As(err, &verr) {
		it := approvalItem{A: a, Comment: comment, Error: verr.For("comment")}
		v, err := s.approvalsView(r, &it)
		if err != nil {
			return err
		}
		v.Base.URL = "/approvals"
		return render(w, r, http.StatusUnprocessableEntity, approvalsPage(v))
	}
	if err != nil {
		return decisionError(err)
	}
	http.Redirect(w, r, "/approvals?decided="+strconv.FormatInt(a.ID, 10), http.StatusSeeOther)
	return nil
}

// decidable loads the approval named in the URL with the verdict, and
// checks that the user may decide it.
func (s *Server) decidable(r *http.Request) (store.Approval, string, error) {
	verdict := chi.URLParam(r, "verdict")
	if verdict != "approve" && verdict != "reject" {
		return store.Approval{}, "", errStatus(http.StatusNotFound, "Unknown decision; use approve or reject.")
	}
	id, err := strconv.ParseInt(chi.URLParam(r, "approvalID"), 10, 64)
	if err != nil || id <= 0 {
		return store.Approval{}, "", errNotFound
	}
	a, err := s.store.Approval(r.Context(), id)
	if err != nil {
		return store.Approval{}, "", err
	}
	u, _ := userFrom(r.Context())
	if !canDecide(u, a) {
		return store.Approval{}, "", errOwnRequest
	}
	return a, verdict, nil
}

var errOwnRequest = errStatus(http.StatusForbidden, "You cannot approve or reject your own request; another approver must decide it.")

// decisionError turns the store's refusals into what the approver reads.
func decisionError(err error) error {
	var de *store.DecidedError
	switch {
	case errors.As(err, &de):
		return errStatus(http.StatusConflict, fmt.Sprintf("Someone was quicker: this was already %s by %s at %s.",
			de.Verdict, de.By, fmtTime(de.At)))
	case errors.Is(err, store.ErrOwnRequest):
		return errOwnRequest
	}
	return err
}

// apiApproval is an approval in the JSON API.
type apiApproval struct {
	ID          int64      `json:"id"`
	Kind        string     `json:"kind"`
	RequestID   int64      `json:"requestId"`
	Request     string     `json:"request"`
	Team        string     `json:"team"`
	ExtendDays  int        `json:"extendDays,omitempty"`
	Replicas    int        `json:"replicas,omitempty"`
	Version     int        `json:"version,omitempty"`
	Reasons     string     `json:"reasons"`
	RequestedBy string     `json:"requestedBy"`
	CreatedAt   time.Time  `json:"createdAt"`
	Verdict     string     `json:"verdict,omitempty"`
	DecidedBy   string     `json:"decidedBy,omitempty"`
	DecidedAt   *time.Time `json:"decidedAt,omitempty"`
	Comment     string     `json:"comment,omitempty"`
}

func toAPIApproval(a store.Approval) apiApproval {
	return apiApproval{ID: a.ID, Kind: string(a.Kind), RequestID: a.RequestID, Request: a.Request.Name, Team: a.Request.TeamName,
		ExtendDays: a.ExtendDays, Replicas: a.Replicas, Version: a.Version, Reasons: a.Reasons, RequestedBy: a.RequestedBy, CreatedAt: a.CreatedAt,
		Verdict: a.Verdict, DecidedBy: a.DecidedBy, DecidedAt: a.DecidedAt, Comment: a.Comment}
}

func (s *Server) apiApprovals(w http.ResponseWriter, r *http.Request) error {
	u, _ := userFrom(r.Context())
	if !canSeeApprovals(u) {
		return errForbidden
	}
	q, err := s.store.ApprovalQueue(r.Context())
	if err != nil {
		return err
	}
	out := []apiApproval{}
	for _, a := range q {
		out = append(out, toAPIApproval(a))
	}
	writeJSON(w, http.StatusOK, map[string]any{"items": out})
	return nil
}

func (s *Server) apiApprovalDecide(w http.ResponseWriter, r *http.Request) error {
	u, _ := userFrom(r.Context())
	if !canSeeApprovals(u) {
		return errForbidden
	}
	a, verdict, err := s.decidable(r)
	if err != nil {
		return err
	}
	var in struct {
		Comment string `json:"comment"`
	}
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &in); err != nil {
			return err
		}
	}
	a, err = s.store.DecideApproval(r.Context(), a.ID, u, verdict == "approve", in.Comment)
	if err != nil {
		return apiDecisionError(err)
	}
	writeJSON(w, http.StatusOK, toAPIApproval(a))
	return nil
}

func apiDecisionError(err error) error {
	var de *store.DecidedError
	if errors.As(err, &de) {
		return errStatus(http.StatusConflict, fmt.Sprintf("already %s by %s at %s", de.Verdict, de.By, de.At.UTC().Format(time.RFC3339)))
	}
	err = decisionError(err)
	var he *httpError
	if errors.As(err, &he) {
		return errStatus(he.status, strings.TrimSuffix(strings.ToLower(he.msg[:1])+he.msg[1:], "."))
	}
	return err
}
