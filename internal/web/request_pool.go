package web

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"paddock/internal/store"
)

// poolView is the members table and the scale form on a pool's page.
type poolView struct {
	Replicas int
	Members  []store.PoolMember
	// CanScale offers the scale form (the owner or the platform team, in a
	// state that allows it); Why says why it is not offered when it could be.
	CanScale bool
	Why      string
	// PerVM is what each VM counts against the quota, e.g. "1 vCPU, 512 MiB".
	PerVM string
	// Quota is the team's quota as used now.
	Quota []store.QuotaLine
	// Console offers each running member's consoles (console.go).
	Console bool
	// MaxByQuota is the largest size the quota allows (0: no limit).
	MaxByQuota int
	// AutoLimit is the largest size policy approves by itself.
	AutoLimit int
	// Pending is the size waiting for approval, or 0.
	Pending int
	// Max is the largest size the scale input offers: what the quota leaves
	// room for, within the largest pool Paddock makes.
	Max int
	// Error says why the last scale was refused, next to the input.
	Error string
}

// scaleDescribedBy lists the ids that describe the scale input.
func scaleDescribedBy(v poolView) string {
	if v.Error != "" {
		return "scale-error scale-effect"
	}
	return "scale-effect"
}

// poolOf builds the pool panel of req for u; nil for a single VM.
func (s *Server) poolOf(ctx context.Context, u store.User, req store.Request, spec store.TemplateSpec, approvals []store.Approval) (*poolView, error) {
	if !req.Pool {
		return nil, nil
	}
	v := &poolView{Replicas: req.Replicas, Members: req.Members, AutoLimit: spec.AutoApproveReplicas()}
	for _, a := range approvals {
		if a.Open() && a.Kind == store.ApprovalScale {
			v.Pending = a.Replicas
		}
	}
	if req.State.Terminal() || !canScale(u, req) {
		return v, nil
	}
	if !store.ScaleAllowed(req.State) || req.Desired == "deleted" {
		v.Why = "The pool can be scaled when it is provisioning, running or stopped."
		return v, nil
	}
	v.CanScale = true
	sq, err := s.store.PreviewScale(ctx, req, req.Replicas)
	if err != nil {
		return nil, err
	}
	v.PerVM = fmt.Sprintf("%d vCPU, %s", sq.PerVM.VCPU, store.FormatMiB(sq.PerVM.MemoryMiB))
	if sq.PerVM.DiskGiB > 0 {
		v.PerVM += fmt.Sprintf(", %d GiB disk", sq.PerVM.DiskGiB)
	}
	v.Quota = sq.Lines
	// The largest pool the quota leaves room for: every limited resource
	// divided by what one VM uses.
	room := -1
	per := map[string]int{"vCPU": sq.PerVM.VCPU, "memory": sq.PerVM.MemoryMiB, "VMs": 1, "disk": sq.PerVM.DiskGiB}
	for _, l := range sq.Lines {
		if l.Limit == nil || per[l.Resource] == 0 {
			continue
		}
		free := max(*l.Limit-l.Used, 0) / per[l.Resource]
		if room < 0 || free < room {
			room = free
		}
	}
	v.Max = store.MaxPoolReplicas
	if room >= 0 {
		v.MaxByQuota = req.Replicas + room
		v.Max = min(v.Max, max(v.MaxByQuota, 1))
	}
	return v, nil
}

// requestScale scales a pool from its page and returns to it. Growing
// beyond policy opens an approval instead (the page then says so).
func (s *Server) requestScale(w http.ResponseWriter, r *http.Request) error {
	req, err := s.visibleRequest(r)
	if err != nil {
		return err
	}
	u, _ := userFrom(r.Context())
	if !canScale(u, req) {
		return s.backToRequest(w, r, req.ID, "scale", "", scaleRefusal(req))
	}
	n, err := strconv.Atoi(strings.TrimSpace(r.PostFormValue("replicas")))
	if err != nil {
		return s.backToRequest(w, r, req.ID, "scale", "",
			errStatus(http.StatusUnprocessableEntity, fmt.Sprintf("Replicas must be a whole number of VMs, from 1 to %d.", store.MaxPoolReplicas)))
	}
	sc, err := s.store.ScalePool(r.Context(), req.ID, n, store.UserActor(u))
	done := fmt.Sprintf("Scaling the pool from %d to %s.", sc.From, nouns(sc.To, "VM", "VMs"))
	switch {
	case sc.Pending:
		done = fmt.Sprintf("Growing the pool to %d VMs is waiting for approval: %s.", sc.To, sc.Decision)
	case sc.From == sc.To:
		done = fmt.Sprintf("The pool already has %d VMs.", sc.To)
	}
	return s.backToRequest(w, r, req.ID, "scale", done, err)
}

// apiScaleResult is the answer to POST /api/v1/requests/{id}/scale.
type apiScaleResult struct {
	From int `json:"from"`
	To   int `json:"to"`
	// Pending is true when growing beyond policy opened an approval: the
	// pool keeps From VMs until someone approves.
	Pending  bool       `json:"pending"`
	Decision string     `json:"decision,omitempty"`
	Request  apiRequest `json:"request"`
}

// apiScale is POST /api/v1/requests/{id}/scale {"replicas": N}: the owner
// (or the platform team) scales a pool. 202 with what was done.
func (s *Server) apiScale(w http.ResponseWriter, r *http.Request) error {
	req, err := s.visibleRequest(r)
	if err != nil {
		return err
	}
	u, _ := userFrom(r.Context())
	if !canScale(u, req) {
		return scaleRefusal(req)
	}
	var in struct {
		Replicas *int `json:"replicas"`
	}
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	if in.Replicas == nil {
		return &store.ValidationError{Fields: []store.FieldError{{Field: "replicas",
			Message: fmt.Sprintf("is required: the number of VMs, from 1 to %d", store.MaxPoolReplicas)}}}
	}
	sc, err := s.store.ScalePool(r.Context(), req.ID, *in.Replicas, store.UserActor(u))
	if err != nil {
		return err
	}
	got, err := s.store.Request(r.Context(), req.ID)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusAccepted, apiScaleResult{From: sc.From, To: sc.To, Pending: sc.Pending, Decision: sc.Decision,
		Request: toAPIRequest(got, "")})
	return nil
}
