package web

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"paddock/internal/store"
)

// visibleRequest loads the request named in the URL, if the user may see it.
// Requests the user may not see are reported as not found, so ids cannot be
// probed.
func (s *Server) visibleRequest(r *http.Request) (store.Request, error) {
	id, err := strconv.ParseInt(chi.URLParam(r, "id"), 10, 64)
	if err != nil || id <= 0 {
		return store.Request{}, errNotFound
	}
	req, err := s.store.Request(r.Context(), id)
	if err != nil {
		return store.Request{}, err
	}
	u, _ := userFrom(r.Context())
	if !canSee(u, req) {
		return store.Request{}, errNotFound
	}
	return req, nil
}

func (s *Server) requestShow(w http.ResponseWriter, r *http.Request) error {
	req, err := s.visibleRequest(r)
	if err != nil {
		return err
	}
	live, err := s.liveView(r.Context(), req)
	if err != nil {
		return err
	}
	id := strconv.FormatInt(req.ID, 10)
	v := requestView{
		Base: s.viewBase(r, req.Name), Live: live, Manifest: req.VM != nil && req.VM.Manifest != "",
		Justif: req.Justification, Decision: req.Decision,
		Template: fmt.Sprintf("%s (version %d)", req.TemplateName, req.TemplateVersion),
		Stream:   "/requests/" + id + "/stream", LiveSrc: "/requests/" + id + "/live",
	}
	if v.Justif == "" {
		v.Justif = "—"
	}
	// A refusal goes next to its control; a confirmation stays at the top.
	if f := v.Base.Flash; f != nil && f.Error && f.Near != "" {
		v.Base.Flash, v.Live.Flash = nil, f
		if f.Near == "scale" && v.Live.Pool != nil {
			v.Live.Pool.Error, v.Live.Flash = f.Msg, nil
		}
	}
	states, err := s.store.TemplateStates(r.Context())
	if err != nil {
		return err
	}
	v.TemplateNews = newsOf(req, states[req.TemplateID])
	return render(w, r, http.StatusOK, requestPage(v))
}

// requestLive renders the live fragment of the request page.
func (s *Server) requestLive(w http.ResponseWriter, r *http.Request) error {
	req, err := s.visibleRequest(r)
	if err != nil {
		return err
	}
	live, err := s.liveView(r.Context(), req)
	if err != nil {
		return err
	}
	w.Header().Set("Cache-Control", "no-store")
	return render(w, r, http.StatusOK, requestLive(live))
}

func (s *Server) liveView(ctx context.Context, req store.Request) (liveView, error) {
	events, err := s.store.Events(ctx, req.ID)
	if err != nil {
		return liveView{}, err
	}
	u, _ := userFrom(ctx)
	v := liveView{R: req, Events: events, CanAct: canAct(u, req), ExpiresIn: until(time.Until(req.ExpiresAt))}
	tv, err := s.store.TemplateVersion(ctx, req.TemplateID, req.TemplateVersion)
	if err != nil {
		return liveView{}, err
	}
	v.Ephemeral = tv.Spec.Image.Ephemeral()
	if v.Approvals, err = s.store.ApprovalsOf(ctx, req.ID); err != nil {
		return liveView{}, err
	}
	v.Lease = leaseOf(u, req, v.Approvals, tv.Spec.MaxLeaseDays, s.leaseGrace(), time.Now())
	if v.Cattle, err = s.cattleOf(ctx, u, req, v.Ephemeral, v.Approvals); err != nil {
		return liveView{}, err
	}
	if v.Pool, err = s.poolOf(ctx, u, req, tv.Spec, v.Approvals); err != nil {
		return liveView{}, err
	}
	if v.Pool != nil {
		v.Pool.Console = canConsole(u, req)
	}
	v.Console = !req.Pool && req.VM != nil && req.VM.Name != "" && req.State == store.StateRunning && canConsole(u, req)
	if v.Console {
		v.Thumbnail = thumbnailOf(req.ID, req.VM.Name, false)
	}
	if req.VM != nil {
		v.SSH = fmt.Sprintf("ssh %s@%s", tv.Spec.SSHUser, req.VM.IP)
		v.Virtctl = fmt.Sprintf("virtctl ssh --namespace %s %s@vm/%s", req.VM.Namespace, tv.Spec.SSHUser, req.VM.Name)
		v.KubeEvents = s.kubeEvents(ctx, req)
	}
	v.Phase = phaseOf(req, events)
	for _, a := range []actionButton{
		{Action: "start", Label: "Start", Class: "secondary"},
		{Action: "stop", Label: "Stop", Class: "secondary", Confirm: "Stop this VM? Its processes end; it can be started again."},
		{Action: "restart", Label: "Restart", Class: "secondary", Confirm: "Restart this VM now?"},
		{Action: "delete", Label: "Delete", Class: "danger", Confirm: "Delete this VM and its disks? This cannot be undone.",
			Hint: "Deletes the VM and its disks; this cannot be undone."},
	} {
		if !store.ActionAllowed(store.Action(a.Action), req.State) {
			continue
		}
		a.Why = actionRefusal(store.Action(a.Action), v.Phase)
		switch {
		case a.Action == "delete" && req.State == store.StatePendingApproval:
			a.Label, a.Confirm, a.Hint = "Withdraw request", "Withdraw this request?", "Withdraws the request; nothing was created yet."
		case a.Action == "restart" && v.Ephemeral:
			a.Confirm = "Restart this VM now? Its disk is a container disk: anything written to it is lost on restart."
		}
		if a.Action == "delete" {
			if v.CanAct {
				v.Delete = &a
			}
			continue
		}
		v.Actions = append(v.Actions, a)
	}
	return v, nil
}

// kubeEvents fetches the VM's recent Kubernetes events for troubleshooting;
// a cluster that does not answer just shows none.
func (s *Server) kubeEvents(ctx context.Context, req store.Request) []kubeEvent {
	if s.cluster == nil || req.State == store.StateDeleted {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	evs, err := s.cluster.RecentEvents(ctx, req.VM.Namespace, req.VM.Name, 10)
	if err != nil {
		s.log.WarnContext(ctx, "recent events", "request_id", req.ID, "err", err)
		return nil
	}
	out := make([]kubeEvent, 0, len(evs))
	for _, e := range evs {
		at := e.LastTimestamp.Time
		if at.IsZero() {
			at = e.CreationTimestamp.Time
		}
		out = append(out, kubeEvent{At: at, Type: e.Type, Reason: e.Reason, Message: e.Message})
	}
	return out
}

func (s *Server) requestManifest(w http.ResponseWriter, r *http.Request) error {
	req, err := s.visibleRequest(r)
	if err != nil {
		return err
	}
	if req.VM == nil || req.VM.Manifest == "" {
		return errStatus(http.StatusNotFound, "No VirtualMachine has been created for this request yet.")
	}
	w.Header().Set("Content-Type", "application/yaml; charset=utf-8")
	w.Header().Set("Content-Disposition", fmt.Sprintf(`inline; filename="%s.yaml"`, req.Name))
	_, err = w.Write([]byte(req.VM.Manifest))
	return err
}

// requestList lists the requests the user may see, a page at a time,
// filtered by state and owner and sorted on a column.
func (s *Server) requestList(w http.ResponseWriter, r *http.Request) error {
	u, _ := userFrom(r.Context())
	q := r.URL.Query()
	const pageSize = 50
	lf := requestListFormOf(q)
	f := store.RequestPageFilter{State: store.State(lf.State), Sort: lf.Sort, Asc: lf.Asc, Limit: pageSize, Offset: (lf.Page - 1) * pageSize}
	scope := listScope(u, store.RequestFilter{})
	f.TeamID = scope.TeamID
	if lf.Mine {
		f.RequesterID = u.ID
	}
	reqs, total, more, err := s.store.RequestPage(r.Context(), f)
	if err != nil {
		return err
	}
	v := requestsView{Base: s.viewBase(r, "VMs & requests"), CanAsk: canRequest(u), Requests: reqs, Form: lf, Total: total,
		States: historyStates, From: f.Offset + 1, To: f.Offset + len(reqs)}
	if lf.Page > 1 {
		v.PrevURL = lf.url(lf.Sort, lf.Asc, lf.Page-1)
	}
	if more {
		v.NextURL = lf.url(lf.Sort, lf.Asc, lf.Page+1)
	}
	var pools []int64
	for _, rq := range reqs {
		if rq.Pool {
			pools = append(pools, rq.ID)
		}
	}
	if v.PoolIPs, err = s.store.PoolIPs(r.Context(), pools); err != nil {
		return err
	}
	if v.Templates, err = s.store.TemplateStates(r.Context()); err != nil {
		return err
	}
	if v.Exports, err = s.exportLinks(r.Context(), u); err != nil {
		return err
	}
	v.Scope = "Every team's requests."
	if u.Role == store.RoleDeveloper {
		v.Scope = "Your team's requests."
	}
	return render(w, r, http.StatusOK, requestsPage(v))
}

// requestAction records a day-2 action from the request page and returns to
// it, saying what is under way, or why the action was refused.
func (s *Server) requestAction(w http.ResponseWriter, r *http.Request) error {
	req, err := s.visibleRequest(r)
	if err != nil {
		return err
	}
	err = s.act(r, req)
	return s.backToRequest(w, r, req.ID, "actions", actionDone(req, store.Action(chi.URLParam(r, "action"))), err)
}

// actionDone is the flash after action was accepted on req.
func actionDone(req store.Request, action store.Action) string {
	switch action {
	case store.ActionStart:
		return "Starting " + req.Name + ". This page shows when it is running."
	case store.ActionStop:
		return "Stopping " + req.Name + ". This page shows when it has stopped."
	case store.ActionRestart:
		return "Restarting " + req.Name + "."
	case store.ActionDelete:
		if req.State == store.StatePendingApproval {
			return "Request " + req.Name + " withdrawn."
		}
		return "Deleting " + req.Name + " and its disks."
	}
	return ""
}

func (s *Server) act(r *http.Request, req store.Request) error {
	u, _ := userFrom(r.Context())
	if !canAct(u, req) {
		return errForbidden
	}
	action := store.Action(chi.URLParam(r, "action"))
	switch action {
	case store.ActionStart, store.ActionStop, store.ActionRestart, store.ActionDelete:
	default:
		return errStatus(http.StatusNotFound, "Unknown action; use start, stop, restart or delete.")
	}
	// A second stop (or start, or delete) while the first is under way
	// would queue the same work again: refuse it, saying what is going on.
	events, err := s.store.Events(r.Context(), req.ID)
	if err != nil {
		return err
	}
	if why := actionRefusal(action, phaseOf(req, events)); why != "" && store.ActionAllowed(action, req.State) {
		return errStatus(http.StatusConflict, why)
	}
	return s.store.RequestAction(r.Context(), req.ID, action, store.UserActor(u))
}

// until renders a duration like "in 6 days" or "3 hours ago".
func until(d time.Duration) string {
	past := d < 0
	if past {
		d = -d
	}
	var s string
	switch {
	case d >= 48*time.Hour:
		s = nouns(int(math.Round(d.Hours()/24)), "day", "days")
	case d >= 2*time.Hour:
		s = nouns(int(d.Hours()), "hour", "hours")
	case d < time.Minute:
		s = "less than a minute"
	default:
		s = nouns(int(d.Minutes()), "minute", "minutes")
	}
	if past {
		return s + " ago"
	}
	return "in " + s
}

// eventTitle names an event for the timeline.
func eventTitle(e store.Event) string {
	switch e.Kind {
	case "submitted":
		return "Submitted"
	case "decision":
		// The actor ("policy") follows the title: "Approved by policy".
		if e.ToState == store.StateApproved {
			return "Approved"
		}
		return "Sent for approval"
	case "vm_created":
		return "VM created"
	case "action":
		return "Action"
	case "waiting":
		return "Waiting"
	case "drift":
		return "Changed outside Paddock → " + e.ToState.Label()
	case "approval":
		// The approver follows the title, as the policy does.
		if e.ToState == store.StateRejected {
			return "Rejected"
		}
		return "Approved"
	case "lease_warning":
		return "Lease ending soon"
	case "lease_expired":
		return "Lease ended → expired"
	case "lease_delete":
		return "Grace period over: deleting"
	case "lease_extended":
		return "Lease extended"
	case "lease_restored":
		return "Back from expiry → " + e.ToState.Label()
	case "extension_requested":
		return "Lease extension asked"
	case "extension_rejected":
		return "Lease extension rejected"
	case "rebuild":
		return "Rebuild started → approved"
	case "rebuild_requested":
		return "Rebuild from an older version asked"
	case "rebuild_rejected":
		return "Rebuild rejected"
	case "rebuild_deleted":
		return "Old VM deleted for the rebuild"
	case "pet":
		return "Pet or cattle"
	case "rollout":
		return "Scheduled for a rollout"
	case "scale":
		return "Pool scaled"
	case "scale_requested":
		return "Pool scale-up asked"
	case "scale_rejected":
		return "Pool scale-up rejected"
	}
	if e.FromState != e.ToState && e.ToState != "" {
		return e.FromState.Label() + " → " + e.ToState.Label()
	}
	return e.Kind
}

// eventReason is an event's reason without the verdict its title and actor
// say already: under "Approved by manager", "approved by manager: go ahead"
// reads "go ahead"; under "Approved by policy", "auto-approved: within team
// quota" reads "within team quota".
func eventReason(e store.Event) string {
	return verdictCut(e.Reason, e.Actor)
}

// verdictCut cuts a leading verdict, alone or by actor, off reason.
func verdictCut(reason, actor string) string {
	for _, p := range []string{"auto-approved", "needs approval", "approved by " + actor, "rejected by " + actor, "approved", "rejected"} {
		if rest, ok := strings.CutPrefix(reason, p); ok && (rest == "" || strings.HasPrefix(rest, ": ")) {
			return strings.TrimPrefix(rest, ": ")
		}
	}
	return reason
}

// ariaInvalid is the aria-invalid value for a field with error message msg.
func ariaInvalid(msg string) string {
	if msg != "" {
		return "true"
	}
	return "false"
}
