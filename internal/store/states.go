package store

// The request state table: every state, and in one place the states from
// which each change may be made.

import (
	"slices"
	"strings"
)

// State is where a request is in its life.
type State string

// The request states; the README's Architecture section draws the transitions.
const (
	StatePendingApproval State = "pending_approval"
	StateApproved        State = "approved"
	StateProvisioning    State = "provisioning"
	StateRunning         State = "running"
	StateStopped         State = "stopped"
	StateFailed          State = "failed"
	StateRejected        State = "rejected"
	StateExpired         State = "expired"
	StateDeleted         State = "deleted"
)

// Terminal reports whether no VM exists or will exist for the request.
func (s State) Terminal() bool { return s == StateRejected || s == StateDeleted }

// Label is the state in words for pages.
func (s State) Label() string {
	return strings.ReplaceAll(string(s), "_", " ")
}

// actionStates lists the states from which each action may be taken.
var actionStates = map[Action][]State{
	// An expired VM starts again only when its lease is extended.
	ActionStart:   {StateStopped},
	ActionStop:    {StateRunning, StateProvisioning},
	ActionRestart: {StateRunning},
	ActionDelete:  {StatePendingApproval, StateApproved, StateProvisioning, StateRunning, StateStopped, StateFailed, StateExpired},
}

// ActionAllowed reports whether action may be taken on a request in state.
func ActionAllowed(action Action, state State) bool {
	for _, s := range actionStates[action] {
		if s == state {
			return true
		}
	}
	return false
}

// rebuildStates are the states from which a VM may be rebuilt: it exists (or
// failed), and is not already being rebuilt or deleted. An expired VM is
// extended first.
var rebuildStates = []State{StateRunning, StateStopped, StateFailed}

// RebuildAllowed reports whether a request in state may be rebuilt.
func RebuildAllowed(state State) bool {
	for _, s := range rebuildStates {
		if s == state {
			return true
		}
	}
	return false
}

// scaleStates are the states in which a pool may be scaled: it exists and
// is neither being (re)built, deleted, nor expired (extend it first).
var scaleStates = []State{StateProvisioning, StateRunning, StateStopped}

// ScaleAllowed reports whether a pool in state may be scaled.
func ScaleAllowed(state State) bool { return slices.Contains(scaleStates, state) }

// leaseStates are the states in which a request's lease runs.
var leaseStates = []State{StateApproved, StateProvisioning, StateRunning, StateStopped, StateFailed}

func inLease(s State) bool { return slices.Contains(leaseStates, s) }

// vmStates are the states in which the request's VM or pool exists in
// the cluster (or did until the watcher saw it go), so that its deletion
// may be recorded.
var vmStates = []State{StateProvisioning, StateRunning, StateStopped, StateFailed, StateExpired}

// DeletableStates are the states a request moves to deleted from once its
// VM or pool is gone: approved (nothing made yet) and every live state.
var DeletableStates = append([]State{StateApproved}, vmStates...)
