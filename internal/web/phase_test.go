package web

import (
	"testing"

	"paddock/internal/store"
)

// The change a person asked for stays on the page until the cluster has
// caught up, whichever intermediate state KubeVirt reports on the way.
func TestPhaseOfFollowsTheChangeAskedFor(t *testing.T) {
	action := func(what string, s store.State) store.Event {
		return store.Event{Kind: "action", FromState: s, ToState: s, Reason: what + " requested"}
	}
	move := func(from, to store.State) store.Event {
		return store.Event{Kind: "observed", FromState: from, ToState: to}
	}
	for _, c := range []struct {
		name    string
		state   store.State
		desired store.Desired
		events  []store.Event
		want    string
	}{
		{"start asked, still stopped", store.StateStopped, store.DesiredRunning,
			[]store.Event{action("start", store.StateStopped)}, phaseStarting},
		{"start asked, KubeVirt says Starting", store.StateProvisioning, store.DesiredRunning,
			[]store.Event{action("start", store.StateStopped), move(store.StateStopped, store.StateProvisioning)}, phaseStarting},
		{"start done", store.StateRunning, store.DesiredRunning,
			[]store.Event{action("start", store.StateStopped), move(store.StateProvisioning, store.StateRunning)}, ""},
		{"stop asked", store.StateRunning, store.DesiredStopped,
			[]store.Event{action("stop", store.StateRunning)}, phaseStopping},
		{"stop done", store.StateStopped, store.DesiredStopped,
			[]store.Event{action("stop", store.StateRunning), move(store.StateRunning, store.StateStopped)}, ""},
		{"first provisioning is not a start", store.StateProvisioning, store.DesiredRunning,
			[]store.Event{move(store.StateApproved, store.StateProvisioning)}, ""},
		{"delete asked", store.StateRunning, store.DesiredDeleted,
			[]store.Event{action("delete", store.StateRunning)}, phaseDeleting},
	} {
		req := store.Request{State: c.state, Desired: c.desired}
		if got := phaseOf(req, c.events); got != c.want {
			t.Errorf("%s: phase %q, want %q", c.name, got, c.want)
		}
	}
}
