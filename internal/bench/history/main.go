// Command history measures the history and insight pages at scale: it seeds
// a dedicated database with N historical requests (once; a database that
// already holds them is reused), then requests every history page variant,
// the insight page and the full CSV export through the real HTTP handler,
// and writes the figures to BENCHMARKS.md. `make bench` runs it.
//
//	go run ./internal/bench/history -n 1000000 -out BENCHMARKS.md
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"paddock/internal/seed"
	"paddock/internal/store"
	"paddock/internal/templatefile"
	"paddock/templates"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

type options struct {
	n          int
	dbURL      string
	fresh      bool
	out        string
	samples    int
	samplesCSV string
}

func run(ctx context.Context, args []string, stdout io.Writer) error {
	var o options
	fs := flag.NewFlagSet("history-bench", flag.ContinueOnError)
	fs.IntVar(&o.n, "n", 1_000_000, "requests in the benchmark database")
	def := os.Getenv("PADDOCK_BENCH_DATABASE_URL")
	if def == "" {
		def = "postgres://postgres@127.0.0.1:5432/paddock_bench?sslmode=disable"
	}
	fs.StringVar(&o.dbURL, "database-url", def, "the dedicated benchmark database (created if missing; PADDOCK_BENCH_DATABASE_URL)")
	fs.BoolVar(&o.fresh, "fresh", false, "drop and re-create the benchmark database first")
	fs.StringVar(&o.out, "out", "BENCHMARKS.md", "where to write the figures")
	fs.IntVar(&o.samples, "samples", 200, "requests measured per page variant")
	fs.StringVar(&o.samplesCSV, "samples-csv", "", "also write every sample (round, page, start, latency) to this CSV file")
	if err := fs.Parse(args); err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(stdout, nil))
	rep := &report{N: o.n, Samples: o.samples, LoadBefore: loadavg()}
	pool, err := prepare(ctx, o, log, rep)
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := measure(ctx, o, pool, log, rep); err != nil {
		return err
	}
	rep.LoadAfter = loadavg()
	if err := rep.machine(ctx, pool); err != nil {
		return err
	}
	if err := rep.write(o.out); err != nil {
		return err
	}
	log.Info("wrote the figures", "file", o.out)
	return nil
}

// prepare creates, migrates and seeds the benchmark database as needed.
func prepare(ctx context.Context, o options, log *slog.Logger, rep *report) (*pgxpool.Pool, error) {
	u, err := url.Parse(o.dbURL)
	if err != nil {
		return nil, fmt.Errorf("database URL: %w", err)
	}
	name := u.Path[1:]
	admin := *u
	admin.Path = "/postgres"
	conn, err := pgx.Connect(ctx, admin.String())
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	if o.fresh {
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			conn.Close(ctx)
			return nil, err
		}
	}
	var exists bool
	if err := conn.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)`, name).Scan(&exists); err != nil {
		conn.Close(ctx)
		return nil, err
	}
	if !exists {
		log.Info("creating the benchmark database", "name", name)
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize()); err != nil {
			conn.Close(ctx)
			return nil, err
		}
	}
	conn.Close(ctx)

	pool, err := pgxpool.New(ctx, o.dbURL)
	if err != nil {
		return nil, err
	}
	if err := store.Migrate(ctx, pool, slog.New(slog.DiscardHandler)); err != nil {
		pool.Close()
		return nil, err
	}
	st := store.New(pool)
	if err := seedBase(ctx, st); err != nil {
		pool.Close()
		return nil, err
	}
	start := time.Now()
	added, err := seed.History(ctx, st, o.n, time.Now(), 7, func(done int) {
		if done%100000 == 0 {
			log.Info("seeding", "requests", done, "elapsed", time.Since(start).Round(time.Second))
		}
	})
	if err != nil {
		pool.Close()
		return nil, err
	}
	if added > 0 {
		rep.Seeded, rep.SeedTook, rep.SeedLoad = added, time.Since(start), loadavg()
		log.Info("seeded", "requests", added, "took", time.Since(start).Round(time.Second))
		t := time.Now()
		if _, err := pool.Exec(ctx, `VACUUM ANALYZE requests, events`); err != nil {
			pool.Close()
			return nil, err
		}
		log.Info("vacuumed", "took", time.Since(t).Round(time.Second))
	}
	t := time.Now()
	res, err := st.RefreshInsight(ctx, time.Now())
	if err != nil {
		pool.Close()
		return nil, err
	}
	log.Info("insight refreshed", "requests", res.Requests, "weeks", res.Weeks, "took", time.Since(t).Round(time.Millisecond))
	if res.Requests > 0 {
		rep.FullRefresh, rep.FullRefreshN = time.Since(t), res.Requests
		// Kept in the benchmark database, so that a run that reuses it
		// still reports how long making it took.
		_, err := pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS bench_history_seed (at timestamptz, requests int,
			seed_seconds float8, refresh_seconds float8, load text)`)
		if err == nil {
			_, err = pool.Exec(ctx, `INSERT INTO bench_history_seed VALUES (now(), $1, $2, $3, $4)`,
				rep.Seeded, rep.SeedTook.Seconds(), rep.FullRefresh.Seconds(), rep.SeedLoad)
		}
		if err != nil {
			pool.Close()
			return nil, err
		}
		if _, err := pool.Exec(ctx, `VACUUM ANALYZE request_facts, request_runs, insight_weekly, insight_period, insight_failures`); err != nil {
			pool.Close()
			return nil, err
		}
	}
	return pool, nil
}

// seedBase creates what `portal dev` creates: the example templates and the
// demo users.
func seedBase(ctx context.Context, st *store.Store) error {
	team, err := st.EnsureTeam(ctx, "payments", "payments")
	if err != nil {
		return err
	}
	for _, u := range []struct {
		login string
		role  store.Role
		team  *int64
	}{{"developer", store.RoleDeveloper, &team.ID}, {"platform", store.RolePlatform, &team.ID}, {"manager", store.RoleManager, nil}} {
		if _, err := st.EnsureUser(ctx, u.login, u.login, u.role, u.team); err != nil {
			return err
		}
	}
	specs, err := templatefile.Read(templates.FS)
	if err != nil {
		return err
	}
	for _, s := range specs {
		if _, _, err := st.PublishTemplate(ctx, s, nil); err != nil {
			return errors.Join(fmt.Errorf("publish %s", s.Name), err)
		}
	}
	return nil
}
