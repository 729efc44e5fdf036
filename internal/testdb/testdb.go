// Package testdb gives each test a private PostgreSQL database, cloned from
// a template database that has every migration applied, so tests run in
// parallel against a real server without seeing each other's rows.
//
// The server is PADDOCK_TEST_DATABASE_URL, or the local one at
// postgres://postgres@127.0.0.1:5432/postgres.
package testdb

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"log/slog"
	"net/url"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"paddock/internal/store"
	"paddock/migrations"
)

// AdminURL is the server tests create their databases on.
func AdminURL() string {
	if u := os.Getenv("PADDOCK_TEST_DATABASE_URL"); u != "" {
		return u
	}
	return "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"
}

var (
	once     sync.Once
	tmplName string
	onceErr  error
)

// New returns a pool on a fresh, migrated database that is dropped when the
// test ends.
func New(t testing.TB) *pgxpool.Pool {
	t.Helper()
	url := NewURL(t)
	pool, err := pgxpool.New(context.Background(), url)
	if err != nil {
		t.Fatalf("testdb: connect: %v", err)
	}
	t.Cleanup(pool.Close)
	return pool
}

// NewURL creates a fresh, migrated database and returns its URL; the
// database is dropped when the test ends (after the test's own cleanups).
func NewURL(t testing.TB) string {
	t.Helper()
	ctx := context.Background()
	once.Do(func() { tmplName, onceErr = prepareTemplate(ctx) })
	if onceErr != nil {
		t.Fatalf("testdb: %v (is PostgreSQL running? set PADDOCK_TEST_DATABASE_URL to use another server)", onceErr)
	}
	name := "paddock_test_" + randHex(6)
	admin, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		t.Fatalf("testdb: connect to %s: %v", redact(AdminURL()), err)
	}
	defer admin.Close(ctx)
	var lastErr error
	for range 20 {
		_, lastErr = admin.Exec(ctx, fmt.Sprintf(`CREATE DATABASE %s TEMPLATE %s`, name, tmplName))
		if lastErr == nil {
			break
		}
		time.Sleep(50 * time.Millisecond) // the template is briefly busy while another clone starts
	}
	if lastErr != nil {
		t.Fatalf("testdb: create database: %v", lastErr)
	}
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), AdminURL())
		if err != nil {
			t.Logf("testdb: drop %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		if _, err := c.Exec(context.Background(), fmt.Sprintf(`DROP DATABASE IF EXISTS %s WITH (FORCE)`, name)); err != nil {
			t.Logf("testdb: drop %s: %v", name, err)
		}
	})
	return withDatabase(AdminURL(), name)
}

// prepareTemplate makes (once per migration set) the migrated template database.
func prepareTemplate(ctx context.Context) (string, error) {
	h := sha256.New()
	err := fs.WalkDir(migrations.FS, ".", func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(migrations.FS, path)
		h.Write([]byte(path))
		h.Write(b)
		return err
	})
	if err != nil {
		return "", err
	}
	name := "paddock_tmpl_" + hex.EncodeToString(h.Sum(nil))[:12]
	admin, err := pgx.Connect(ctx, AdminURL())
	if err != nil {
		return "", fmt.Errorf("connect to %s: %w", redact(AdminURL()), err)
	}
	defer admin.Close(ctx)
	// Serialise template creation across test binaries running in parallel.
	if _, err := admin.Exec(ctx, `SELECT pg_advisory_lock(7265)`); err != nil {
		return "", err
	}
	defer admin.Exec(ctx, `SELECT pg_advisory_unlock(7265)`) //nolint:errcheck
	var exists bool
	if err := admin.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		return "", err
	}
	if exists {
		return name, nil
	}
	building := name + "_building"
	if _, err := admin.Exec(ctx, `DROP DATABASE IF EXISTS `+building+` WITH (FORCE)`); err != nil {
		return "", err
	}
	if _, err := admin.Exec(ctx, `CREATE DATABASE `+building); err != nil {
		return "", err
	}
	pool, err := pgxpool.New(ctx, withDatabase(AdminURL(), building))
	if err != nil {
		return "", err
	}
	err = store.Migrate(ctx, pool, slog.New(slog.DiscardHandler))
	pool.Close()
	if err != nil {
		return "", fmt.Errorf("migrate template: %w", err)
	}
	if _, err := admin.Exec(ctx, `ALTER DATABASE `+building+` RENAME TO `+name); err != nil {
		return "", err
	}
	return name, nil
}

func withDatabase(raw, db string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	u.Path = "/" + db
	return u.String()
}

func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "the test database"
	}
	return u.Redacted()
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Provision plays the provisioner for request id: when the request is
// approved (and not to be deleted), it records the VM make returns for it,
// as the reconcile job does once it has created one, and moves the request
// to provisioning. A request in any other state is left alone.
func Provision(ctx context.Context, st *store.Store, id int64, make func(store.Request) (store.VM, error)) error {
	r, err := st.Request(ctx, id)
	if err != nil {
		return err
	}
	if r.State != store.StateApproved || r.Desired == store.DesiredDeleted {
		return nil
	}
	vm, err := make(r)
	if err != nil {
		return err
	}
	_, err = st.RecordVM(ctx, id, vm)
	return err
}
