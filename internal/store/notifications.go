package store

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"
)

// The notifications Paddock sends to its webhooks.
const (
	NotifyApprovalNeeded     = "approval_needed"
	NotifyApproved           = "approved"
	NotifyRejected           = "rejected"
	NotifyVMReady            = "vm_ready"
	NotifyProvisioningFailed = "provisioning_failed"
	NotifyLeaseExpiring      = "lease_expiring"
	NotifyVMExpired          = "vm_expired"
)

// Notification is one announcement for people outside Paddock (a Slack
// channel, an incident tool), written in the transaction of the change it
// announces and delivered to every configured webhook by a WebhookJob.
type Notification struct {
	ID        int64     `db:"id"`
	Kind      string    `db:"kind"`
	RequestID *int64    `db:"request_id"`
	Text      string    `db:"text"`
	CreatedAt time.Time `db:"created_at"`
}

// WebhookJob delivers one notification to every webhook endpoint that has
// not received it yet; River retries it with backoff.
type WebhookJob struct {
	NotificationID int64 `json:"notification_id"`
}

// Kind implements river.JobArgs.
func (WebhookJob) Kind() string { return "webhook" }

// WebhookMaxAttempts is how often a notification is tried before its
// deliveries are marked failed: with the worker's backoff, about five hours.
const WebhookMaxAttempts = 12

// InsertOpts gives deliveries hours of retries.
func (WebhookJob) InsertOpts() river.InsertOpts {
	return river.InsertOpts{MaxAttempts: WebhookMaxAttempts}
}

// addNotification records a notification and, when webhooks are on,
// enqueues its delivery in tx.
func (s *Store) addNotification(ctx context.Context, tx pgx.Tx, kind string, requestID int64, text string) error {
	var id int64
	err := tx.QueryRow(ctx, `INSERT INTO notifications (kind, request_id, text) VALUES ($1, $2, $3) RETURNING id`,
		kind, requestID, text).Scan(&id)
	if err != nil {
		return fmt.Errorf("record %s notification: %w", kind, err)
	}
	if !s.webhooks {
		return nil
	}
	return s.enqueue(ctx, tx, WebhookJob{NotificationID: id})
}

// EnableWebhooks makes every new notification enqueue a WebhookJob. Without
// it (no webhook configured) notifications are only recorded. Call it once,
// at start-up, before serving.
func (s *Store) EnableWebhooks() { s.webhooks = true }

// announce sends the notifications a state change deserves: the first
// time a VM runs, and a VM that failed on its way up.
func (s *Store) announce(ctx context.Context, tx pgx.Tx, id int64, from, to State, reason string) error {
	switch {
	case to == StateRunning && (from == StateProvisioning || from == StateApproved):
		return s.addNotification(ctx, tx, NotifyVMReady, id, "The VM is running.")
	case to == StateFailed && (from == StateProvisioning || from == StateApproved):
		return s.addNotification(ctx, tx, NotifyProvisioningFailed, id, "Provisioning failed: "+reason)
	}
	return nil
}

// Notification returns one notification.
func (s *Store) Notification(ctx context.Context, id int64) (Notification, error) {
	rows, _ := s.pool.Query(ctx, `SELECT id, kind, request_id, text, created_at FROM notifications WHERE id = $1`, id)
	n, err := pgx.CollectExactlyOneRow(rows, pgx.RowToStructByName[Notification])
	if errors.Is(err, pgx.ErrNoRows) {
		return n, ErrNotFound
	}
	if err != nil {
		return n, fmt.Errorf("notification %d: %w", id, err)
	}
	return n, nil
}

// Delivery statuses.
const (
	DeliveryRetrying  = "retrying"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// WebhookDelivery is the state of one notification at one endpoint.
type WebhookDelivery struct {
	NotificationID int64      `db:"notification_id"`
	Endpoint       string     `db:"endpoint"`
	Status         string     `db:"status"`
	Attempts       int        `db:"attempts"`
	LastStatus     int        `db:"last_status"`
	LastError      string     `db:"last_error"`
	UpdatedAt      time.Time  `db:"updated_at"`
	DeliveredAt    *time.Time `db:"delivered_at"`
	Kind           string     `db:"kind"`
	Text           string     `db:"text"`
	RequestID      *int64     `db:"request_id"`
}

// Delivered reports whether endpoint has received the notification.
func (s *Store) Delivered(ctx context.Context, notificationID int64, endpoint string) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM webhook_deliveries
		WHERE notification_id = $1 AND endpoint = $2 AND status = 'delivered')`, notificationID, endpoint).Scan(&ok)
	if err != nil {
		return false, fmt.Errorf("delivery of notification %d: %w", notificationID, err)
	}
	return ok, nil
}

// RecordDelivery records one attempt to deliver a notification to an
// endpoint: delivered when errMsg is "", otherwise retrying, or failed when
// final.
func (s *Store) RecordDelivery(ctx context.Context, notificationID int64, endpoint string, httpStatus int, errMsg string, final bool) error {
	status := DeliveryDelivered
	switch {
	case errMsg != "" && final:
		status = DeliveryFailed
	case errMsg != "":
		status = DeliveryRetrying
	}
	_, err := s.pool.Exec(ctx, `
		INSERT INTO webhook_deliveries (notification_id, endpoint, status, attempts, last_status, last_error, delivered_at)
		VALUES ($1, $2, $3, 1, $4, $5, CASE WHEN $3 = 'delivered' THEN now() END)
		ON CONFLICT (notification_id, endpoint) DO UPDATE SET status = EXCLUDED.status,
			attempts = webhook_deliveries.attempts + 1, last_status = EXCLUDED.last_status,
			last_error = EXCLUDED.last_error, delivered_at = EXCLUDED.delivered_at, updated_at = now()`,
		notificationID, endpoint, status, httpStatus, errMsg)
	if err != nil {
		return fmt.Errorf("record delivery of notification %d: %w", notificationID, err)
	}
	return nil
}

// WebhookDeliveries lists the deliveries that have not succeeded (failed
// and still retrying), most recently tried first, for the platform team.
func (s *Store) WebhookDeliveries(ctx context.Context, limit int) ([]WebhookDelivery, error) {
	if limit <= 0 || limit > 500 {
		limit = 100
	}
	rows, _ := s.pool.Query(ctx, `
		SELECT d.notification_id, d.endpoint, d.status, d.attempts, d.last_status, d.last_error, d.updated_at,
		       d.delivered_at, n.kind, n.text, n.request_id
		FROM webhook_deliveries d JOIN notifications n ON n.id = d.notification_id
		WHERE d.status <> 'delivered'
		ORDER BY d.updated_at DESC LIMIT $1`, limit)
	ds, err := pgx.CollectRows(rows, pgx.RowToStructByName[WebhookDelivery])
	if err != nil {
		return nil, fmt.Errorf("list webhook deliveries: %w", err)
	}
	return ds, nil
}

// DeliveryCounts counts deliveries by status over the last day.
func (s *Store) DeliveryCounts(ctx context.Context) (map[string]int, error) {
	rows, _ := s.pool.Query(ctx, `SELECT status, count(*)::int FROM webhook_deliveries
		WHERE updated_at > now() - interval '1 day' GROUP BY status`)
	out := map[string]int{}
	var st string
	var n int
	_, err := pgx.ForEachRow(rows, []any{&st, &n}, func() error { out[st] = n; return nil })
	if err != nil {
		return nil, fmt.Errorf("count webhook deliveries: %w", err)
	}
	return out, nil
}
