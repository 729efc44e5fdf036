package web

import (
	"strings"

	"paddock/internal/store"
)

// The changes under way that a request's page shows in place of its state,
// between a person asking and the cluster catching up.
const (
	phaseStopping   = "stopping"
	phaseStarting   = "starting"
	phaseDeleting   = "deleting"
	phaseRebuilding = "rebuilding"
)

// phaseOf names the change under way on req, or "" when its state is
// settled. It reads what was asked (the request's desired state and the
// latest action or rebuild on its timeline) against what the cluster has
// reported since: a stop is under way from "stop requested" until the
// request is stopped (or failed), and so on.
func phaseOf(req store.Request, events []store.Event) string {
	if req.State.Terminal() {
		return ""
	}
	if req.Desired == "deleted" {
		return phaseDeleting
	}
	for i := len(events) - 1; i >= 0; i-- {
		e := events[i]
		switch {
		case e.Kind == "rebuild":
			if req.State == store.StateApproved || req.State == store.StateProvisioning {
				return phaseRebuilding
			}
			return ""
		case e.Kind == "action":
			switch strings.TrimSuffix(e.Reason, " requested") {
			case string(store.ActionStop):
				if req.Desired == "stopped" && (req.State == store.StateRunning || req.State == store.StateProvisioning) {
					return phaseStopping
				}
			case string(store.ActionStart):
				// KubeVirt reports a starting VM as Starting, which the
				// watcher records as provisioning: still the start under way.
				if req.Desired == "running" && (req.State == store.StateStopped || req.State == store.StateProvisioning) {
					return phaseStarting
				}
			}
			return ""
		case e.FromState != e.ToState && settled(e.ToState):
			return ""
		}
	}
	return ""
}

// settled reports whether a request in state s has nothing under way that
// a person asked for.
func settled(s store.State) bool {
	switch s {
	case store.StateRunning, store.StateStopped, store.StateFailed, store.StateExpired, store.StateRejected, store.StateDeleted:
		return true
	}
	return false
}

// stateShown is the state a page shows for req: the change under way, or
// the state itself.
func stateShown(req store.Request, phase string) string {
	if phase != "" {
		return phase
	}
	return req.State.Label()
}

// phaseClass is the badge class of a request's state or change under way.
func phaseClass(req store.Request, phase string) string {
	if phase != "" {
		return "badge state-busy"
	}
	return stateClass(req.State)
}

// actionRefusal says why action cannot be taken now on a request with the
// change phase under way, or "" when it can.
func actionRefusal(action store.Action, phase string) string {
	switch {
	case phase == "":
		return ""
	case phase == phaseDeleting:
		return "The VM is being deleted."
	case action == store.ActionStop && phase == phaseStopping:
		return "The VM is already stopping."
	case action == store.ActionStart && phase == phaseStarting:
		return "The VM is already starting."
	case action == store.ActionRestart:
		return "The VM is " + phase + "; restart it once that is done."
	}
	return ""
}
