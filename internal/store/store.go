// Package store is the only code in Paddock that speaks SQL. Each file covers
// one table; state changes of a request go through one function (transition)
// that also writes the event row, so history never disagrees with state.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	"github.com/pressly/goose/v3"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"paddock/migrations"
)

// ErrNotFound is returned when a looked-up row does not exist.
var ErrNotFound = errors.New("not found")

// ErrConflict is returned when a row changed under the caller (for example a
// request that is no longer in the state an action expects). Every such
// error is a *ConflictError (or a DecidedError, QuotaError) with its reason;
// errors.Is(err, ErrConflict) holds for all of them.
var ErrConflict = errors.New("conflict")

// ConflictError is an action refused because of the state things are in;
// Reason says why, in words for the user.
type ConflictError struct{ Reason string }

func (e *ConflictError) Error() string { return "conflict: " + e.Reason }

// Unwrap makes errors.Is(err, ErrConflict) hold.
func (e *ConflictError) Unwrap() error { return ErrConflict }

func conflictf(format string, args ...any) error {
	return &ConflictError{Reason: fmt.Sprintf(format, args...)}
}

// ConflictReason is the reason of a conflict (ConflictError, DecidedError,
// QuotaError) in err, and false when err is no conflict.
func ConflictReason(err error) (string, bool) {
	var ce *ConflictError
	var de *DecidedError
	var qe *QuotaError
	switch {
	case errors.As(err, &ce):
		return ce.Reason, true
	case errors.As(err, &de):
		return de.reason(), true
	case errors.As(err, &qe):
		return QuotaMessage(qe.Team, qe.Blockers), true
	case errors.Is(err, ErrConflict):
		return "it changed meanwhile", true
	}
	return "", false
}

// Store holds the connection pool and the job client used for transactional enqueue.
type Store struct {
	pool *pgxpool.Pool
	jobs *river.Client[pgx.Tx]
	// webhooks is set when notifications are to be delivered (EnableWebhooks).
	webhooks bool
	// specs caches decoded template specs (see specCache).
	specs *specCache
	// catalog caches the lists pages show, by catalog version.
	catalog *catalogCache
}

// New returns a Store on pool. Call SetJobClient before submitting requests.
func New(pool *pgxpool.Pool) *Store {
	return &Store{pool: pool, specs: &specCache{}, catalog: &catalogCache{}}
}

// Pool returns the underlying pool (for River and the session store).
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// SetJobClient sets the River client whose InsertTx enqueues background work in
// the same transaction as the rows that cause it.
func (s *Store) SetJobClient(c *river.Client[pgx.Tx]) { s.jobs = c }

// Ping checks that PostgreSQL answers.
func (s *Store) Ping(ctx context.Context) error { return s.pool.Ping(ctx) }

// inTx runs fn in a transaction, committing when it returns nil. A commit
// refused because it would take a team over quota returns a *QuotaError.
func (s *Store) inTx(ctx context.Context, fn func(tx pgx.Tx) error) error {
	return quotaRefusal(pgx.BeginFunc(ctx, s.pool, fn))
}

// migrateLockKey is the advisory lock key that serialises migrations across replicas.
const migrateLockKey = 0x7061646f636b // "padock"

// Migrate applies Paddock's and River's migrations under an advisory lock, so
// that several replicas may start at once.
func Migrate(ctx context.Context, pool *pgxpool.Pool, log *slog.Logger) error {
	conn, err := pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("acquire connection for migrations: %w", err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SELECT pg_advisory_lock($1)", migrateLockKey); err != nil {
		return fmt.Errorf("take migration lock: %w", err)
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", migrateLockKey)
	}()

	db := stdlib.OpenDBFromPool(pool)
	defer db.Close()
	if err := gooseUp(ctx, db, log); err != nil {
		return err
	}
	rm, err := rivermigrate.New(riverpgxv5.New(pool), nil)
	if err != nil {
		return fmt.Errorf("river migrator: %w", err)
	}
	res, err := rm.Migrate(ctx, rivermigrate.DirectionUp, nil)
	if err != nil {
		return fmt.Errorf("river migrations: %w", err)
	}
	for _, v := range res.Versions {
		log.Info("applied river migration", "version", v.Version)
	}
	return nil
}

func gooseUp(ctx context.Context, db *sql.DB, log *slog.Logger) error {
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS)
	if err != nil {
		return fmt.Errorf("goose provider: %w", err)
	}
	res, err := p.Up(ctx)
	if err != nil {
		return fmt.Errorf("apply migrations: %w", err)
	}
	for _, r := range res {
		log.Info("applied migration", "file", r.Source.Path, "duration", r.Duration)
	}
	return nil
}

// MigrationsCurrent reports whether every embedded migration has been applied.
func (s *Store) MigrationsCurrent(ctx context.Context) (bool, error) {
	db := stdlib.OpenDBFromPool(s.pool)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, migrations.FS)
	if err != nil {
		return false, fmt.Errorf("goose provider: %w", err)
	}
	pending, err := p.HasPending(ctx)
	if err != nil {
		return false, fmt.Errorf("check migrations: %w", err)
	}
	return !pending, nil
}

// isUniqueViolation reports whether err is a unique-constraint violation on constraint.
func isUniqueViolation(err error, constraint string) bool {
	var pgErr *pgconn.PgError
	return errors.As(err, &pgErr) && pgErr.Code == "23505" && (constraint == "" || pgErr.ConstraintName == constraint)
}
