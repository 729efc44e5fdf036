package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"

	"paddock/internal/store"
	"paddock/templates"
)

func cmdDev(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	var c config
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	commonFlags(fs, &c, getenv, "")
	dataDir := fs.String("data-dir", ".paddock", "where the private PostgreSQL lives when DATABASE_URL is unset")
	seedN := fs.Int("seed-history", envInt(getenv, "PADDOCK_SEED_HISTORY", 0),
		"add realistic historical requests until there are this many, for the history and insight pages (PADDOCK_SEED_HISTORY)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if c.Cluster == "" {
		c.Cluster = "simulated"
		if c.Kubeconfig != "" {
			c.Cluster = "kubernetes"
		}
	}
	if getenv("PADDOCK_LOG_FORMAT") == "" {
		c.LogFormat = "text"
	}
	c.DevSignIn = true
	c.CreateNamespaces = true
	auth, err := readAuthConfig(getenv)
	if err != nil {
		return err
	}
	c.Auth = auth
	log := newLogger(c.LogFormat, stderr)

	if c.DatabaseURL == "" {
		db, err := newDevDB(*dataDir, stderr)
		if err != nil {
			return err
		}
		if err := db.Start(ctx); err != nil {
			db.Stop()
			return err
		}
		defer db.Stop()
		c.DatabaseURL = db.URL()
		log.Info("private PostgreSQL started", "url", c.DatabaseURL)
	}
	pool, err := openDB(ctx, c.DatabaseURL)
	if err != nil {
		return err
	}
	if err := store.Migrate(ctx, pool, log); err != nil {
		pool.Close()
		return err
	}
	err = seed(ctx, store.New(pool), log)
	if err == nil && *seedN > 0 {
		err = seedHistory(ctx, store.New(pool), *seedN, log)
	}
	pool.Close()
	if err != nil {
		return err
	}
	ready := make(chan string, 1)
	go func() {
		select {
		case addr := <-ready:
			fmt.Fprintf(stdout, "\nPaddock is running: open http://%s and sign in as developer, platform or manager.\n\n", browserAddr(addr))
		case <-ctx.Done():
		}
	}()
	err = serve(ctx, c, log, ready)
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// browserAddr turns a listen address like "[::]:8080" into "localhost:8080".
func browserAddr(addr string) string {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			return "localhost" + addr[i:]
		}
	}
	return addr
}

// seed creates the demo team, users and templates. It is idempotent: a
// second run changes nothing.
func seed(ctx context.Context, st *store.Store, log *slog.Logger) error {
	team, err := st.EnsureTeam(ctx, "payments", "payments")
	if err != nil {
		return err
	}
	for _, u := range []struct {
		login, name string
		role        store.Role
		team        *int64
	}{
		{"developer", "Dana Developer", store.RoleDeveloper, &team.ID},
		{"platform", "Pat Platform", store.RolePlatform, &team.ID},
		{"manager", "Morgan Manager", store.RoleManager, nil},
	} {
		if _, err := st.EnsureUser(ctx, u.login, u.name, u.role, u.team); err != nil {
			return err
		}
	}
	specs, err := store.ReadTemplates(templates.FS)
	if err != nil {
		return err
	}
	for _, spec := range specs {
		v, changed, err := st.PublishTemplate(ctx, spec, nil)
		if err != nil {
			return fmt.Errorf("seed template %s: %w", spec.Name, err)
		}
		if changed {
			log.Info("seeded template", "name", spec.Name, "version", v)
		}
	}
	return seedGuardrails(ctx, st, team, log)
}
