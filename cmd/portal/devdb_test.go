package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestDevDBAsRootInAPrivateCheckout: `make dev` run by root in a checkout
// the postgres user cannot enter (root's 0700 home, a `mktemp -d`
// directory) starts its private PostgreSQL, which runs as postgres, answers
// on the URL it gives, and is stopped afterwards. Only root can show it.
func TestDevDBAsRootInAPrivateCheckout(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("only root runs the private PostgreSQL as another user")
	}
	if testing.Short() {
		t.Skip("starts a private PostgreSQL")
	}
	checkout := t.TempDir() // 0700, owned by root
	if err := os.Chmod(checkout, 0o700); err != nil {
		t.Fatal(err)
	}
	t.Chdir(checkout)
	var log strings.Builder
	db, err := newDevDB(".paddock", &syncWriter{w: &log})
	if err != nil {
		t.Skipf("no PostgreSQL binaries: %v", err)
	}
	// The cluster lives outside the checkout: remove it too.
	t.Cleanup(func() { os.RemoveAll(filepath.Dir(db.data)) })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := db.Start(ctx); err != nil {
		db.Stop()
		t.Fatalf("start: %v\n%s", err, log.String())
	}
	conn, err := pgx.Connect(ctx, db.URL())
	if err != nil {
		db.Stop()
		t.Fatalf("connect to %s: %v\n%s", db.URL(), err, log.String())
	}
	var who string
	err = conn.QueryRow(ctx, `SELECT current_user`).Scan(&who)
	conn.Close(ctx)
	if err != nil || who != "postgres" {
		t.Errorf("current_user = %q, %v", who, err)
	}
	// Started again (as after a crash), it finds and reuses the running server.
	var log2 strings.Builder
	again, err := newDevDB(".paddock", &log2)
	if err != nil {
		t.Fatal(err)
	}
	if err := again.Start(ctx); err != nil || !strings.Contains(log2.String(), "reusing") {
		t.Errorf("second start-up: %v\n%s", err, log2.String())
	}
	db.Stop()
	if strings.Contains(log.String(), "Permission denied") {
		t.Errorf("PostgreSQL met a permission problem:\n%s", log.String())
	}
	if c, err := pgx.Connect(ctx, db.URL()); err == nil {
		c.Close(ctx)
		t.Error("the server still answers after Stop")
	}
}
