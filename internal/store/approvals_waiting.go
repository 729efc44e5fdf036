package store

import (
	"context"
	"fmt"
)

// ApprovalsWaitingFor counts the approvals in the queue (as ApprovalQueue
// lists them) that user may decide: neither asked by them nor about their
// own request. The navigation shows it beside "Approvals".
func (s *Store) ApprovalsWaitingFor(ctx context.Context, userID int64) (int, error) {
	var n int
	if err := s.pool.QueryRow(ctx, approvalsWaitingSQL("$1"), userID).Scan(&n); err != nil {
		return 0, fmt.Errorf("count approvals waiting for user %d: %w", userID, err)
	}
	return n, nil
}

// approvalsWaitingSQL is ApprovalsWaitingFor's count for the user whose id
// is the SQL expression user: a parameter, or a column of the query it is
// part of (LoadPageSession).
func approvalsWaitingSQL(user string) string {
	return `SELECT count(*) FROM approvals a JOIN requests r ON r.id = a.request_id
		WHERE a.verdict IS NULL AND (a.kind = 'request' AND r.state = 'pending_approval'
			OR a.kind IN ('extension', 'scale', 'rebuild') AND r.state NOT IN ('deleted', 'rejected', 'pending_approval'))
		  AND a.requested_by <> ` + user + ` AND r.requester_id <> ` + user
}
