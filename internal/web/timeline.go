package web

import "paddock/internal/store"

// stepAfter says how long after the previous step event i of a request's
// timeline came ("after 2 h 13 min"), and for the milestones (a person's
// decision, the VM running for the first time, failing, ending) also how
// long after the request. The first event has nothing before it.
func stepAfter(events []store.Event, i int) string {
	if i <= 0 || i >= len(events) {
		return ""
	}
	e := events[i]
	s := "after " + fmtDuration(e.At.Sub(events[i-1].At))
	if i > 1 && milestone(events, i) {
		s += ", " + fmtDuration(e.At.Sub(events[0].At)) + " after the request"
	}
	return s
}

// milestone reports whether event i is one whose time since the request
// people ask about.
func milestone(events []store.Event, i int) bool {
	e := events[i]
	if e.FromState == e.ToState {
		return false
	}
	switch e.ToState {
	case store.StateApproved, store.StateRejected:
		return e.Kind != "decision"
	case store.StateRunning:
		for _, p := range events[:i] {
			if p.ToState == store.StateRunning {
				return false // only the first time
			}
		}
		return true
	case store.StateFailed, store.StateExpired, store.StateDeleted:
		return true
	}
	return false
}
