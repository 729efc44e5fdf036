package store

import "time"

// Decider is who first decided a request, the policy or a person, with
// the verdict and the reason given.
type Decider struct {
	RequestID int64
	Actor     string
	Verdict   State
	Reason    string
	At        time.Time
}

// firstDecision is the first decision on request r, from its events: the
// policy's "decision" event that approved it, or a move out of
// pending_approval to approved or rejected. A request not decided (yet)
// has none. The index events_request (request_id, id) serves it.
const firstDecision = `
	SELECT e.actor, e.to_state AS verdict, e.reason, e.at FROM events e
	WHERE e.request_id = r.id AND e.to_state IN ('approved', 'rejected')
	  AND (e.kind = 'decision' OR e.from_state = 'pending_approval')
	ORDER BY e.id LIMIT 1`
