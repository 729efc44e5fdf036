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

// Rollouts: the platform team moves a template's VMs to a newer version in
// batches (store.StartRollout), watches the progress live, and pauses,
// resumes or cancels.

type rolloutsView struct {
	Base      base
	Rollouts  []rolloutRow
	Templates []rolloutTemplate
}

type rolloutRow struct {
	ID       int64
	Template string
	Version  int
	State    store.RolloutState
	Progress string
	By       string
	Started  string
}

type rolloutTemplate struct {
	Name, Label string
	Current     int
}

// rolloutNewView is the plan of a rollout, shown before it starts.
type rolloutNewView struct {
	Base      base
	Plan      store.RolloutPlan
	Versions  []int
	BatchSize string
	Batches   int
	Cattle    []store.RolloutCandidate
	Pets      []store.RolloutCandidate
	Errors    *store.ValidationError
}

func (v rolloutNewView) err(field string) string { return v.Errors.For(field) }

// rolloutView is one rollout's page and its live progress fragment.
type rolloutView struct {
	Base    base
	R       store.Rollout
	Batches []rolloutBatch
	Skipped []store.RolloutItem
	// Summary is one sentence on where the rollout is.
	Summary   string
	CanPause  bool
	CanResume bool
	CanCancel bool
	Notice    string
}

type rolloutBatch struct {
	N      int
	Status string
	Items  []store.RolloutItem
}

func (s *Server) platformRollouts(w http.ResponseWriter, r *http.Request) error {
	rs, err := s.store.Rollouts(r.Context(), 50)
	if err != nil {
		return err
	}
	v := rolloutsView{Base: s.viewBase(r, "Rollouts")}
	for _, ro := range rs {
		v.Rollouts = append(v.Rollouts, rolloutRow{ID: ro.ID, Template: ro.TemplateName, Version: ro.TargetVersion,
			State: ro.State, Progress: progressOf(ro), By: ro.CreatedBy, Started: fmtTime(ro.CreatedAt)})
	}
	ts, err := s.store.Templates(r.Context())
	if err != nil {
		return err
	}
	for _, t := range ts {
		v.Templates = append(v.Templates, rolloutTemplate{Name: t.Name, Label: fmt.Sprintf("%s (%s, v%d)", t.Spec.DisplayName, t.Name, t.Version), Current: t.Version})
	}
	return render(w, r, http.StatusOK, rolloutsPage(v))
}

func progressOf(r store.Rollout) string {
	s := fmt.Sprintf("%d of %d rebuilt", r.Counts[store.ItemDone], r.Total)
	if n := r.Counts[store.ItemSkipped]; n > 0 {
		s += fmt.Sprintf(", %d skipped", n)
	}
	return s
}

// rolloutNew shows what a rollout of ?template= to ?version= (latest when
// empty) would rebuild, batch by batch, and asks to start it.
func (s *Server) rolloutNew(w http.ResponseWriter, r *http.Request) error {
	q := r.URL.Query()
	v, err := s.rolloutPlanView(r, q.Get("template"), q.Get("version"), q.Get("batchSize"), nil)
	if err != nil {
		return err
	}
	return render(w, r, http.StatusOK, rolloutNewPage(v))
}

func (s *Server) rolloutPlanView(r *http.Request, template, version, batchSize string, verr *store.ValidationError) (rolloutNewView, error) {
	v := rolloutNewView{Base: s.viewBase(r, "New rollout"), BatchSize: batchSize, Errors: verr}
	if v.BatchSize == "" {
		v.BatchSize = strconv.Itoa(store.DefaultRolloutBatch)
	}
	ver, err := strconv.Atoi(version)
	if version != "" && (err != nil || ver < 1) {
		return v, errStatus(http.StatusUnprocessableEntity, "Version must be a version number of the template.")
	}
	v.Plan, err = s.store.PlanRollout(r.Context(), template, ver)
	if errors.Is(err, store.ErrNotFound) {
		return v, errStatus(http.StatusNotFound, fmt.Sprintf("There is no template %q. Pick one on the rollouts page.", template))
	}
	if err != nil {
		return v, err
	}
	tvs, err := s.store.TemplateVersions(r.Context(), v.Plan.TemplateID)
	if err != nil {
		return v, err
	}
	for _, tv := range tvs {
		// A withdrawn version builds no VM: it is no rollout's target.
		if !tv.Withdrawn() {
			v.Versions = append(v.Versions, tv.Version)
		}
	}
	for _, c := range v.Plan.Candidates {
		if c.Pet {
			v.Pets = append(v.Pets, c)
		} else {
			v.Cattle = append(v.Cattle, c)
		}
	}
	if b, err := strconv.Atoi(strings.TrimSpace(v.BatchSize)); err == nil && b > 0 && b <= store.MaxRolloutBatch {
		v.Batches = (len(v.Cattle) + b - 1) / b
	} else if v.Errors == nil {
		// The plan's batch size is the one a start takes: a bad one is named
		// at its field, and nothing can start until it is fixed.
		v.Errors = &store.ValidationError{}
		v.Errors.Add("batch_size", "batch size must be a whole number of VMs, between 1 and %d", store.MaxRolloutBatch)
	}
	return v, nil
}

// rolloutCreate starts a rollout and shows its progress; a refused one
// shows the plan again with the reason at the field.
func (s *Server) rolloutCreate(w http.ResponseWriter, r *http.Request) error {
	template, version, batch := r.PostFormValue("template"), r.PostFormValue("version"), r.PostFormValue("batchSize")
	n := store.NewRollout{Template: template}
	verr := &store.ValidationError{}
	if version != "" {
		var err error
		if n.Version, err = strconv.Atoi(version); err != nil || n.Version < 1 {
			verr.Add("version", "choose a version of the template")
		}
	}
	var err error
	if n.BatchSize, err = strconv.Atoi(strings.TrimSpace(batch)); err != nil || n.BatchSize < 1 {
		verr.Add("batch_size", "batch size must be a whole number of VMs, between 1 and %d", store.MaxRolloutBatch)
	}
	if len(verr.Fields) == 0 {
		u, _ := userFrom(r.Context())
		id, err := s.store.StartRollout(r.Context(), n, store.UserActor(u))
		if err == nil {
			http.Redirect(w, r, "/platform/rollouts/"+strconv.FormatInt(id, 10), http.StatusSeeOther)
			return nil
		}
		if !errors.As(err, &verr) {
			return err
		}
	}
	v, err := s.rolloutPlanView(r, template, "", batch, verr)
	if err != nil {
		return err
	}
	v.Plan.Version = n.Version
	return render(w, r, http.StatusUnprocessableEntity, rolloutNewPage(v))
}

func (s *Server) rolloutFrom(r *http.Request) (store.Rollout, error) {
	id, err := strconv.ParseInt(chi.URLParam(r, "rolloutID"), 10, 64)
	if err != nil {
		return store.Rollout{}, errNotFound
	}
	return s.store.Rollout(r.Context(), id)
}

func (s *Server) rolloutViewOf(r *http.Request) (rolloutView, error) {
	ro, err := s.rolloutFrom(r)
	if err != nil {
		return rolloutView{}, err
	}
	v := rolloutView{Base: s.viewBase(r, fmt.Sprintf("Rollout #%d", ro.ID)), R: ro, Skipped: ro.Skipped(),
		CanPause: ro.State == store.RolloutRunning, CanResume: ro.State == store.RolloutPaused, CanCancel: ro.State.Active()}
	byBatch := map[int]*rolloutBatch{}
	cur := ro.CurrentBatch
	for _, it := range ro.Items {
		if it.Batch == 0 {
			continue
		}
		b := byBatch[it.Batch]
		if b == nil {
			b = &rolloutBatch{N: it.Batch}
			byBatch[it.Batch] = b
		}
		b.Items = append(b.Items, it)
	}
	for n := 1; n <= ro.Batches; n++ {
		b := byBatch[n]
		if b == nil {
			continue
		}
		switch {
		case n < cur || cur == 0:
			b.Status = "finished"
		case n == cur && ro.State == store.RolloutRunning:
			b.Status = "rebuilding; the next batch waits until every VM here runs"
		case n == cur:
			b.Status = "stopped here"
		default:
			b.Status = "waiting"
		}
		if ro.State == store.RolloutCancelled && n >= cur && cur != 0 {
			b.Status = "cancelled"
		}
		v.Batches = append(v.Batches, *b)
	}
	v.Summary = rolloutSummary(ro, cur)
	return v, nil
}

func rolloutSummary(ro store.Rollout, cur int) string {
	p := progressOf(ro)
	switch ro.State {
	case store.RolloutRunning:
		return fmt.Sprintf("Running: batch %d of %d; %s.", cur, ro.Batches, p)
	case store.RolloutPaused:
		return fmt.Sprintf("Paused at batch %d of %d; %s.", cur, ro.Batches, p)
	case store.RolloutCancelled:
		return "Cancelled; " + p + "."
	}
	s := "Completed; " + p + "."
	if ro.FinishedAt != nil {
		s = fmt.Sprintf("Completed in %s; %s.", ro.FinishedAt.Sub(ro.CreatedAt).Round(time.Second), p)
	}
	return s
}

func (s *Server) rolloutShow(w http.ResponseWriter, r *http.Request) error {
	v, err := s.rolloutViewOf(r)
	if err != nil {
		return err
	}
	return render(w, r, http.StatusOK, rolloutPage(v))
}

// rolloutProgress is the fragment the rollout page polls while the
// rollout is under way.
func (s *Server) rolloutProgress(w http.ResponseWriter, r *http.Request) error {
	v, err := s.rolloutViewOf(r)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	return render(w, r, http.StatusOK, rolloutProgress(v))
}

// rolloutAct pauses, resumes or cancels a rollout from its page.
func (s *Server) rolloutAct(w http.ResponseWriter, r *http.Request) error {
	ro, err := s.rolloutFrom(r)
	if err != nil {
		return err
	}
	if err := s.changeRollout(r, ro.ID, chi.URLParam(r, "action")); err != nil {
		return err
	}
	http.Redirect(w, r, "/platform/rollouts/"+strconv.FormatInt(ro.ID, 10), http.StatusSeeOther)
	return nil
}

func (s *Server) changeRollout(r *http.Request, id int64, action string) error {
	u, _ := userFrom(r.Context())
	actor := store.UserActor(u)
	switch action {
	case "pause":
		return s.store.PauseRollout(r.Context(), id, actor)
	case "resume":
		return s.store.ResumeRollout(r.Context(), id, actor)
	case "cancel":
		return s.store.CancelRollout(r.Context(), id, actor)
	}
	return errStatus(http.StatusNotFound, "A rollout can be paused, resumed or cancelled; there is no "+strconv.Quote(action)+".")
}

// The API's view of a rollout.
type apiRollout struct {
	ID            int64          `json:"id"`
	Template      string         `json:"template"`
	TargetVersion int            `json:"targetVersion"`
	BatchSize     int            `json:"batchSize"`
	State         string         `json:"state"`
	Reason        string         `json:"reason,omitempty"`
	CurrentBatch  int            `json:"currentBatch"`
	Batches       int            `json:"batches"`
	CreatedBy     string         `json:"createdBy"`
	CreatedAt     time.Time      `json:"createdAt"`
	FinishedAt    *time.Time     `json:"finishedAt"`
	VMs           []apiRolloutVM `json:"vms,omitempty"`
	Counts        map[string]int `json:"counts"`
}

type apiRolloutVM struct {
	RequestID    int64  `json:"requestId"`
	Name         string `json:"name"`
	Owner        string `json:"owner"`
	Team         string `json:"team"`
	Batch        int    `json:"batch"`
	FromVersion  int    `json:"fromVersion"`
	State        string `json:"state"`
	Reason       string `json:"reason,omitempty"`
	RequestState string `json:"requestState"`
	Version      int    `json:"version"`
}

func toAPIRollout(ro store.Rollout) apiRollout {
	a := apiRollout{ID: ro.ID, Template: ro.TemplateName, TargetVersion: ro.TargetVersion, BatchSize: ro.BatchSize,
		State: string(ro.State), Reason: ro.Reason, CurrentBatch: ro.CurrentBatch, Batches: ro.Batches,
		CreatedBy: ro.CreatedBy, CreatedAt: ro.CreatedAt, FinishedAt: ro.FinishedAt, Counts: ro.Counts}
	for _, it := range ro.Items {
		a.VMs = append(a.VMs, apiRolloutVM{RequestID: it.RequestID, Name: it.Name, Owner: it.Owner, Team: it.Team,
			Batch: it.Batch, FromVersion: it.FromVersion, State: it.State, Reason: it.Reason,
			RequestState: string(it.RequestState), Version: it.Version})
	}
	return a
}

// apiRollouts is GET /api/v1/rollouts: the latest rollouts, newest first.
func (s *Server) apiRollouts(w http.ResponseWriter, r *http.Request) error {
	rs, err := s.store.Rollouts(r.Context(), 100)
	if err != nil {
		return err
	}
	out := []apiRollout{}
	for _, ro := range rs {
		out = append(out, toAPIRollout(ro))
	}
	writeJSON(w, http.StatusOK, out)
	return nil
}

// apiCreateRollout is POST /api/v1/rollouts {"template", "version",
// "batchSize"}: version 0 or absent is the latest, batchSize absent is 3.
// 201 with the rollout.
func (s *Server) apiCreateRollout(w http.ResponseWriter, r *http.Request) error {
	var in struct {
		Template  string `json:"template"`
		Version   int    `json:"version"`
		BatchSize int    `json:"batchSize"`
	}
	if err := decodeJSON(r, &in); err != nil {
		return err
	}
	if in.Version < 0 {
		return &store.ValidationError{Fields: []store.FieldError{{Field: "version", Message: "must be a version number, or 0 for the latest"}}}
	}
	if in.BatchSize < 0 {
		return &store.ValidationError{Fields: []store.FieldError{{Field: "batchSize", Message: fmt.Sprintf("must be between 1 and %d", store.MaxRolloutBatch)}}}
	}
	u, _ := userFrom(r.Context())
	id, err := s.store.StartRollout(r.Context(), store.NewRollout{Template: in.Template, Version: in.Version, BatchSize: in.BatchSize}, store.UserActor(u))
	if err != nil {
		return err
	}
	ro, err := s.store.Rollout(r.Context(), id)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusCreated, toAPIRollout(ro))
	return nil
}

// apiRollout is GET /api/v1/rollouts/{id}: the rollout with its VMs.
func (s *Server) apiRollout(w http.ResponseWriter, r *http.Request) error {
	ro, err := s.rolloutFrom(r)
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toAPIRollout(ro))
	return nil
}

// apiRolloutAction is POST /api/v1/rollouts/{id}/pause|resume|cancel; 200
// with the rollout as it is now.
func (s *Server) apiRolloutAction(w http.ResponseWriter, r *http.Request) error {
	ro, err := s.rolloutFrom(r)
	if err != nil {
		return err
	}
	if err := s.changeRollout(r, ro.ID, chi.URLParam(r, "action")); err != nil {
		return err
	}
	if ro, err = s.store.Rollout(r.Context(), ro.ID); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, toAPIRollout(ro))
	return nil
}

func rolloutClass(s store.RolloutState) string { return "badge rollout-" + string(s) }
