package web

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	"paddock/internal/store"
)

// cattleView is the rebuild form and the pet toggle on a request's page.
type cattleView struct {
	Pet bool
	// CanRebuild offers the form; otherwise Refusal may say why not.
	CanRebuild bool
	Refusal    string
	Versions   []versionChoice
	// Warning says plainly what happens to the disk; Confirm asks before.
	Warning string
	Confirm string
	CanPet  bool
	// Rollout tells the owner of a rollout that will rebuild the VM.
	Rollout string
	// Pending says which rebuild waits for approval; Withdrawn that the
	// VM's own version was withdrawn, and why.
	Pending   string
	Withdrawn string
	// Older explains the versions that need approval, when the form offers any.
	Older string
}

type versionChoice struct {
	Version  int
	Label    string
	Selected bool
}

// cattleOf builds the rebuild and pet controls for u on req, whose current
// template version's image is ephemeral or not, with the request's
// approvals (a rebuild may wait for one).
func (s *Server) cattleOf(ctx context.Context, u store.User, req store.Request, ephemeral bool, approvals []store.Approval) (cattleView, error) {
	// Pet or cattle means something once there is a VM to keep or rebuild.
	v := cattleView{Pet: req.Pet, CanPet: canMarkPet(u, req) && req.VM != nil, CanRebuild: canRebuild(u, req)}
	if req.State.Terminal() {
		return cattleView{}, nil
	}
	n, err := s.store.UpcomingRollout(ctx, req.ID)
	if err != nil {
		return v, err
	}
	v.Rollout = rolloutNotice(n, v.CanPet && !v.Pet)
	for _, a := range approvals {
		if a.Open() && a.Kind == store.ApprovalRebuild {
			v.Pending = fmt.Sprintf("A rebuild from v%d is waiting for approval (asked by %s: %s).", a.Version, a.RequestedBy, a.Reasons)
		}
	}
	tvs, err := s.store.TemplateVersions(ctx, req.TemplateID)
	if err != nil {
		return v, err
	}
	for _, tv := range tvs {
		if tv.Version == req.TemplateVersion && tv.Withdrawn() {
			v.Withdrawn = fmt.Sprintf("This VM's template version, v%d, was withdrawn by the platform team: %s. It keeps running; rebuild it from another version.",
				tv.Version, tv.WithdrawnNote)
		}
	}
	if err := rebuildRefusal(u, req); err != nil && req.Pet && u.Role == store.RolePlatform {
		v.Refusal = err.Error()
	}
	if !store.RebuildAllowed(req.State) || !v.CanRebuild || len(tvs) == 0 {
		v.CanRebuild = false
		return v, nil
	}
	// A withdrawn version builds no VM, so it is not offered; an older one
	// waits for approval unless the platform team asks.
	current := tvs[0].Version
	for _, tv := range tvs {
		if tv.Withdrawn() {
			continue
		}
		// A VM that failed is not offered the version it failed on.
		if req.State == store.StateFailed && tv.Version == req.TemplateVersion {
			continue
		}
		c := versionChoice{Version: tv.Version, Label: "v" + strconv.Itoa(tv.Version), Selected: tv.Version == current}
		var notes []string
		if tv.Version == current {
			notes = append(notes, "latest")
		}
		if tv.Version == req.TemplateVersion {
			notes = append(notes, "this VM's")
		}
		if tv.Version < current && !olderAtOnce(u) {
			notes = append(notes, "needs approval")
			v.Older = fmt.Sprintf("v%d replaced the older versions: rebuilding from one of them waits for an approver.", current)
		}
		if len(notes) > 0 {
			c.Label += " (" + strings.Join(notes, ", ") + ")"
		}
		v.Versions = append(v.Versions, c)
	}
	if len(v.Versions) == 0 {
		v.CanRebuild, v.Older = false, ""
		return v, nil
	}
	if !slices.ContainsFunc(v.Versions, func(c versionChoice) bool { return c.Selected }) {
		v.Versions[0].Selected = true
	}
	if ephemeral {
		v.Warning = "This VM's disk is a container disk: the rebuilt VM starts with a fresh disk, and anything written to the old one is lost."
	} else {
		v.Warning = "The VM's root disk is deleted with it and imported afresh from the template's image: anything written to it is lost."
	}
	v.Confirm = fmt.Sprintf("Rebuild %s? It is deleted and created again with the same name, team, owner and lease. %s", req.Name, v.Warning)
	return v, nil
}

// requestRebuild rebuilds a request's VM from the version chosen on its page
// (none or 0: the latest) and returns to the page, which shows the progress.
func (s *Server) requestRebuild(w http.ResponseWriter, r *http.Request) error {
	req, err := s.visibleRequest(r)
	if err != nil {
		return err
	}
	u, _ := userFrom(r.Context())
	if err := rebuildRefusal(u, req); err != nil {
		return s.backToRequest(w, r, req.ID, "rebuild", "", err)
	}
	version := 0
	if f := strings.TrimSpace(r.PostFormValue("version")); f != "" {
		if version, err = strconv.Atoi(f); err != nil || version < 0 {
			return s.backToRequest(w, r, req.ID, "rebuild", "",
				errStatus(http.StatusUnprocessableEntity, "Version must be a version number of the template, or empty for the latest."))
		}
	}
	rb, err := s.store.RequestRebuild(r.Context(), req.ID, version, store.UserActor(u))
	done := fmt.Sprintf("Rebuilding %s from v%d. This page shows when it is running again.", req.Name, rb.ToVersion)
	if rb.Pending {
		done = fmt.Sprintf("The rebuild from v%d is waiting for approval: %s.", rb.ToVersion, rb.Reason)
	}
	return s.backToRequest(w, r, req.ID, "rebuild", done, err)
}

// requestPet marks a VM as a pet (pet=true) or as cattle (pet=false) from
// its page.
func (s *Server) requestPet(w http.ResponseWriter, r *http.Request) error {
	req, err := s.visibleRequest(r)
	if err != nil {
		return err
	}
	u, _ := userFrom(r.Context())
	if !canMarkPet(u, req) {
		return s.backToRequest(w, r, req.ID, "pet", "",
			errStatus(http.StatusForbidden, fmt.Sprintf("Only the VM's owner, %s, may mark it as a pet or as cattle.", req.RequesterLogin)))
	}
	pet, err := strconv.ParseBool(r.PostFormValue("pet"))
	if err != nil {
		return s.backToRequest(w, r, req.ID, "pet", "", errStatus(http.StatusUnprocessableEntity, "Pet must be true or false."))
	}
	done := req.Name + " is now cattle: the platform team may rebuild it too."
	if pet {
		done = req.Name + " is now a pet: only you may rebuild it."
	}
	return s.backToRequest(w, r, req.ID, "pet", done, s.store.SetPet(r.Context(), req.ID, pet, store.UserActor(u)))
}

// apiRebuild is POST /api/v1/requests/{id}/rebuild {"version": N}; no
// body, or version 0, rebuilds from the latest version. 202 with the request
// (and the approval, when the rebuild waits for one).
func (s *Server) apiRebuild(w http.ResponseWriter, r *http.Request) error {
	req, err := s.visibleRequest(r)
	if err != nil {
		return err
	}
	u, _ := userFrom(r.Context())
	if err := rebuildRefusal(u, req); err != nil {
		return err
	}
	var in struct {
		Version int `json:"version"`
	}
	if r.ContentLength != 0 {
		if err := decodeJSON(r, &in); err != nil {
			return err
		}
	}
	if in.Version < 0 {
		return &store.ValidationError{Fields: []store.FieldError{{Field: "version", Message: "must be a version number, or 0 for the latest"}}}
	}
	rb, err := s.store.RequestRebuild(r.Context(), req.ID, in.Version, store.UserActor(u))
	if err != nil {
		return err
	}
	got, err := s.store.Request(r.Context(), req.ID)
	if err != nil {
		return err
	}
	out := apiRebuildResult{apiRequest: toAPIRequest(got, "")}
	if rb.Pending {
		out.ApprovalID, out.ApprovalReason = rb.ApprovalID, rb.Reason
	}
	writeJSON(w, http.StatusAccepted, out)
	return nil
}

// apiRebuildResult is the answer to POST /api/v1/requests/{id}/rebuild: the
// request, and when the rebuild waits for approval (an older version, asked
// by someone outside the platform team), the approval and why.
type apiRebuildResult struct {
	apiRequest
	ApprovalID     int64  `json:"approvalId,omitempty"`
	ApprovalReason string `json:"approvalReason,omitempty"`
}

// apiPet is POST /api/v1/requests/{id}/pet {"pet": true|false}: the owner
// marks the VM as a pet or as cattle. 200 with {"id", "pet"}.
func (s *Server) apiPet(w http.ResponseWriter, r *http.Request) error {
	req, err := s.visibleRequest(r)
	if err != nil {
		return err
	}
	u, _ := userFrom(r.Context())
	if !canMarkPet(u, req) {
		return errStatus(http.StatusForbidden, fmt.Sprintf("only the VM's owner, %s, may mark it as a pet or as cattle", req.RequesterLogin))
	}
	var in struct {
		Pet *bool `json:"pet"`
	}
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	if in.Pet == nil {
		return &store.ValidationError{Fields: []store.FieldError{{Field: "pet", Message: "is required (true or false)"}}}
	}
	if err := s.store.SetPet(r.Context(), req.ID, *in.Pet, store.UserActor(u)); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, struct {
		ID  int64 `json:"id"`
		Pet bool  `json:"pet"`
	}{req.ID, *in.Pet})
	return nil
}

// rolloutNotice says what a rollout will do (or is doing) to the VM; petHint
// adds how the owner keeps it as it is.
func rolloutNotice(n *store.RolloutNotice, petHint bool) string {
	if n == nil {
		return ""
	}
	what := fmt.Sprintf("Rollout #%d of %s to v%d", n.RolloutID, n.Template, n.Version)
	switch n.ItemState {
	case store.ItemRebuilding:
		return what + " is rebuilding this VM."
	case store.ItemFailed:
		return what + " is paused on this VM: its rebuild failed. The platform team resumes it once the cause is fixed."
	}
	msg := fmt.Sprintf("%s will rebuild this VM in batch %d of %d", what, n.Batch, n.Batches)
	if n.State == store.RolloutPaused {
		msg += fmt.Sprintf(" (the rollout is paused at batch %d)", n.CurrentBatch)
	} else {
		msg += fmt.Sprintf(" (now at batch %d)", n.CurrentBatch)
	}
	msg += ": it is deleted and made again, and its disk starts fresh."
	if petHint {
		msg += " Mark it as a pet to keep it as it is."
	}
	return msg
}
