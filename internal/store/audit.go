package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// Audit actions. Callers may use other names; these are the ones Paddock
// writes itself, listed so that readers of the log know what to filter on.
const (
	AuditSignIn         = "sign_in"
	AuditSignInRefused  = "sign_in_refused"
	AuditSignOutAll     = "sign_out_everywhere"
	AuditUserCreate     = "user_create"
	AuditRoleChange     = "role_change"
	AuditUserDisable    = "user_disable"
	AuditUserEnable     = "user_enable"
	AuditTokenCreate    = "token_create"
	AuditTokenRevoke    = "token_revoke"
	AuditRequestSubmit  = "request_submit"
	AuditVMAction       = "vm_action"
	AuditApproval       = "approval"
	AuditTemplateChange = "template_change"
	// AuditConsoleSession is written when a VM console session ends: who,
	// which VM, when it started and ended, and the bytes each way.
	AuditConsoleSession = "console_session"
)

// AuditEntry is one row of the append-only audit log.
type AuditEntry struct {
	ID      int64          `db:"id"`
	At      time.Time      `db:"at"`
	ActorID *int64         `db:"actor_id"`
	Actor   string         `db:"actor"`
	Action  string         `db:"action"`
	Target  string         `db:"target"`
	Details map[string]any `db:"details"`
}

// DetailsText renders the details as compact JSON with sorted keys, for a
// table cell or a CSV column.
func (e AuditEntry) DetailsText() string {
	if len(e.Details) == 0 {
		return ""
	}
	b, err := json.Marshal(e.Details)
	if err != nil {
		return ""
	}
	return string(b)
}

// execer is what Audit needs of a pool or a transaction.
type execer interface {
	Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
}

// Audit appends an entry to the audit log. Pass the transaction that makes
// the change being recorded, so that the change and its record commit
// together; pass nil to write on its own (for example a refused sign-in,
// which changes nothing). target names what was acted on, such as
// "request:42", "user:alice" or "template:ubuntu-2404". details must not hold
// secrets: the log is readable by managers and exported as CSV.
func (s *Store) Audit(ctx context.Context, tx pgx.Tx, actor Actor, action, target string, details map[string]any) error {
	var db execer = s.pool
	if tx != nil {
		db = tx
	}
	_, err := db.Exec(ctx, auditInsert, auditArgs(actor, action, target, details)...)
	if err != nil {
		return fmt.Errorf("audit %s: %w", action, err)
	}
	return nil
}

const auditInsert = `INSERT INTO audit_log (actor_id, actor, action, target, details) VALUES ($1, $2, $3, $4, $5)`

// auditArgs are auditInsert's arguments for an entry.
func auditArgs(actor Actor, action, target string, details map[string]any) []any {
	if details == nil {
		details = map[string]any{}
	}
	name := actor.Name
	if name == "" {
		name = "system"
	}
	return []any{actor.UserID, name, action, target, details}
}

// queueAudit is Audit in a transaction, as one statement of a batch sent
// on it.
func queueAudit(b *pgx.Batch, actor Actor, action, target string, details map[string]any) {
	b.Queue(auditInsert, auditArgs(actor, action, target, details)...)
}

// RequestTarget is the audit target naming a request.
func RequestTarget(id int64) string { return "request:" + strconv.FormatInt(id, 10) }

// UserTarget is the audit target naming a user.
func UserTarget(login string) string { return "user:" + login }

// AuditFilter selects audit entries. Zero fields match everything.
type AuditFilter struct {
	// Actor matches the actor's name exactly.
	Actor string
	// Action matches the action exactly.
	Action string
	// Target matches entries whose target starts with it.
	Target string
	// Before continues a list after the entry with this id (keyset paging).
	Before int64
	// After selects entries newer than the one with this id: the page
	// before, read by AuditLogNewer.
	After int64
	// Since and Until bound the time of the entries: at or after Since,
	// before Until. Zero times do not bound.
	Since, Until time.Time
	// Limit bounds a page; 0 means 100. AuditLog caps it at 1000.
	Limit int
}

func (f AuditFilter) where() (string, []any) {
	var where []string
	var args []any
	add := func(cond string, arg any) {
		args = append(args, arg)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.Actor != "" {
		add("actor = $%d", f.Actor)
	}
	if f.Action != "" {
		add("action = $%d", f.Action)
	}
	if f.Target != "" {
		add("starts_with(target, $%d)", f.Target)
	}
	if f.Before != 0 {
		add("id < $%d", f.Before)
	}
	if f.After != 0 {
		add("id > $%d", f.After)
	}
	if !f.Since.IsZero() {
		add("at >= $%d", f.Since)
	}
	if !f.Until.IsZero() {
		add("at < $%d", f.Until)
	}
	if len(where) == 0 {
		return "", nil
	}
	return " WHERE " + strings.Join(where, " AND "), args
}

const auditSelect = `SELECT id, at, actor_id, actor, action, target, details FROM audit_log`

// AuditLog lists audit entries newest first.
func (s *Store) AuditLog(ctx context.Context, f AuditFilter) ([]AuditEntry, error) {
	if f.Limit <= 0 {
		f.Limit = 100
	}
	f.Limit = min(f.Limit, 1000)
	where, args := f.where()
	rows, _ := s.pool.Query(ctx, auditSelect+where+fmt.Sprintf(" ORDER BY id DESC LIMIT %d", f.Limit), args...)
	es, err := pgx.CollectRows(rows, pgx.RowToStructByName[AuditEntry])
	if err != nil {
		return nil, fmt.Errorf("list audit log: %w", err)
	}
	return es, nil
}

// AuditActions lists every action the log holds, for a filter.
func (s *Store) AuditActions(ctx context.Context) ([]string, error) {
	rows, _ := s.pool.Query(ctx, `SELECT DISTINCT action FROM audit_log ORDER BY action`)
	as, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("list audit actions: %w", err)
	}
	return as, nil
}

// EachAuditEntry calls fn for every entry matching f (Limit, Before and
// After are ignored), oldest first, without holding the whole log in memory: the CSV
// export streams through it.
func (s *Store) EachAuditEntry(ctx context.Context, f AuditFilter, fn func(AuditEntry) error) error {
	f.Before, f.After, f.Limit = 0, 0, 0
	where, args := f.where()
	rows, err := s.pool.Query(ctx, auditSelect+where+" ORDER BY id", args...)
	if err != nil {
		return fmt.Errorf("export audit log: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		e, err := pgx.RowToStructByName[AuditEntry](rows)
		if err != nil {
			return fmt.Errorf("export audit log: %w", err)
		}
		if err := fn(e); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("export audit log: %w", err)
	}
	return nil
}
