package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"

	"paddock/internal/store"
	"paddock/internal/templatefile"
	"paddock/templates"
)

// devFlags are the flags only `portal dev` has.
type devFlags struct {
	dataDir     string
	seedN       int
	allowRemote bool
}

// parseDev reads the configuration of `portal dev`. Its sign-in page lets
// anyone in as any seeded user, platform included, so it listens on the
// loopback interface unless told otherwise.
func parseDev(args []string, getenv func(string) string, stderr io.Writer) (config, devFlags, error) {
	var c config
	var d devFlags
	fs := flag.NewFlagSet("dev", flag.ContinueOnError)
	fs.SetOutput(stderr)
	commonFlags(fs, &c, getenv, "127.0.0.1:8080", "")
	fs.StringVar(&d.dataDir, "data-dir", ".paddock", "where the private PostgreSQL lives when DATABASE_URL is unset")
	fs.IntVar(&d.seedN, "seed-history", envInt(getenv, "PADDOCK_SEED_HISTORY", 0),
		"add realistic historical requests until there are this many, for the history and insight pages (PADDOCK_SEED_HISTORY)")
	fs.BoolVar(&d.allowRemote, "allow-remote", false,
		"listen on an address other computers can reach; anyone who reaches it can sign in as platform")
	if err := fs.Parse(args); err != nil {
		return c, d, errUsage
	}
	if err := c.checkKube(); err != nil {
		return c, d, err
	}
	if !d.allowRemote && !loopbackOnly(c.Addr) {
		return c, d, fmt.Errorf("portal dev lets anyone sign in as any demo user, platform included, so it listens "+
			"only on the loopback interface (such as 127.0.0.1:8080); %q is reachable from other computers. "+
			"Pass --allow-remote to listen there anyway", c.Addr)
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
		return c, d, err
	}
	c.Auth = auth
	return c, d, nil
}

// loopbackOnly reports whether a listen address is on the loopback
// interface only. An empty host (":8080") means every interface.
func loopbackOnly(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.IsLoopback()
}

func cmdDev(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c, d, err := parseDev(args, getenv, stderr)
	if err != nil {
		return err
	}
	log := newLogger(c.LogFormat, stderr)
	if !loopbackOnly(c.Addr) {
		const warning = "the dev sign-in is reachable from other computers (--allow-remote): anyone who can reach it can sign in as platform"
		log.Warn(warning, "addr", c.Addr)
		fmt.Fprintf(stdout, "\nWARNING: %s.\n\n", warning)
	}

	if c.DatabaseURL == "" {
		db, err := newDevDB(d.dataDir, stderr)
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
	if err == nil && d.seedN > 0 {
		err = seedHistory(ctx, store.New(pool), d.seedN, log)
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
	specs, err := templatefile.Read(templates.FS)
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
