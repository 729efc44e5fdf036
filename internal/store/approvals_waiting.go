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
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM approvals a JOIN requests r ON r.id = a.request_id
		WHERE a.verdict IS NULL AND (a.kind = 'request' AND r.state = 'pending_approval'
			OR a.kind IN ('extension', 'scale', 'rebuild') AND r.state NOT IN ('deleted', 'rejected', 'pending_approval'))
		  AND a.requested_by <> $1 AND r.requester_id <> $1`, userID).Scan(&n)
	if err != nil {
		return 0, fmt.Errorf("count approvals waiting for user %d: %w", userID, err)
	}
	return n, nil
}
