package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"strconv"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"paddock/internal/provision"
	"paddock/internal/store"
	"paddock/internal/web"
)

// config is read once from flags and environment and passed down.
type config struct {
	Addr        string
	MetricsAddr string
	// Profiling serves Go's profiler beside /metrics on MetricsAddr.
	Profiling   bool
	DatabaseURL string
	Kubeconfig  string
	// KubeQPS and KubeBurst are the client-side rate limit of every
	// Kubernetes client (PADDOCK_KUBE_QPS, PADDOCK_KUBE_BURST).
	KubeQPS   float64
	KubeBurst int
	// kubeEnvErr is an unreadable PADDOCK_KUBE_QPS or PADDOCK_KUBE_BURST,
	// reported by checkKube after the flags are parsed.
	kubeEnvErr       error
	Cluster          string
	SimDelay         time.Duration
	CreateNamespaces bool
	WatchNamespace   string
	DevSignIn        bool
	SecureCookies    bool
	LogFormat        string
	Workers          int
	JobTimeout       time.Duration
	ShutdownTimeout  time.Duration
	Auth             authConfig
	Guardrails       guardrailsConfig
	// Failpoint names a point of provisioning where the process kills
	// itself (PADDOCK_FAILPOINT; the crash tests use it).
	Failpoint string
}

// envOr returns the environment value of key, or def.
func envOr(getenv func(string) string, key, def string) string {
	if v := getenv(key); v != "" {
		return v
	}
	return def
}

func envBool(getenv func(string) string, key string, def bool) bool {
	v, err := strconv.ParseBool(getenv(key))
	if err != nil {
		return def
	}
	return v
}

func envDuration(getenv func(string) string, key string, def time.Duration) time.Duration {
	v, err := time.ParseDuration(getenv(key))
	if err != nil {
		return def
	}
	return v
}

// commonFlags registers the flags serve and dev share.
func commonFlags(fs *flag.FlagSet, c *config, getenv func(string) string, defAddr, defCluster string) {
	fs.StringVar(&c.Addr, "addr", envOr(getenv, "PADDOCK_ADDR", defAddr), "listen address (PADDOCK_ADDR)")
	fs.StringVar(&c.DatabaseURL, "database-url", getenv("DATABASE_URL"), "PostgreSQL URL (DATABASE_URL)")
	fs.StringVar(&c.Kubeconfig, "kubeconfig", getenv("KUBECONFIG"), "kubeconfig file; empty means in-cluster config (KUBECONFIG)")
	kubeFlags(fs, c, getenv)
	fs.StringVar(&c.Cluster, "cluster", envOr(getenv, "PADDOCK_CLUSTER", defCluster), "kubernetes or simulated (PADDOCK_CLUSTER)")
	fs.DurationVar(&c.SimDelay, "sim-delay", envDuration(getenv, "PADDOCK_SIM_DELAY", 2*time.Second), "simulated cluster: time per VM start step (PADDOCK_SIM_DELAY)")
	fs.BoolVar(&c.CreateNamespaces, "create-namespaces", envBool(getenv, "PADDOCK_CREATE_NAMESPACES", false), "create a team's namespace when missing (PADDOCK_CREATE_NAMESPACES)")
	c.Failpoint = getenv("PADDOCK_FAILPOINT")
	fs.StringVar(&c.WatchNamespace, "watch-namespace", getenv("PADDOCK_WATCH_NAMESPACE"), "watch VirtualMachines in this namespace only; empty means every namespace (PADDOCK_WATCH_NAMESPACE)")
	fs.StringVar(&c.LogFormat, "log-format", envOr(getenv, "PADDOCK_LOG_FORMAT", "json"), "json or text (PADDOCK_LOG_FORMAT)")
	fs.IntVar(&c.Workers, "workers", 20, "concurrent provisioning jobs per process (PADDOCK_WORKERS)")
	if n, err := strconv.Atoi(getenv("PADDOCK_WORKERS")); err == nil {
		c.Workers = n
	}
	fs.DurationVar(&c.JobTimeout, "job-timeout", envDuration(getenv, "PADDOCK_JOB_TIMEOUT", time.Minute), "longest a provisioning job may run; a job of a crashed process is retried after a little more (PADDOCK_JOB_TIMEOUT)")
	fs.DurationVar(&c.ShutdownTimeout, "shutdown-timeout", 20*time.Second, "time allowed for in-flight requests and jobs at shutdown")
	guardrailsFlags(fs, &c.Guardrails, getenv)
}

// kubeFlags registers the Kubernetes clients' rate limit; the environment
// gives the flags' defaults.
func kubeFlags(fs *flag.FlagSet, c *config, getenv func(string) string) {
	c.KubeQPS, c.KubeBurst = provision.DefaultKubeQPS, provision.DefaultKubeBurst
	if v := getenv("PADDOCK_KUBE_QPS"); v != "" {
		q, err := strconv.ParseFloat(v, 32)
		if err != nil {
			c.kubeEnvErr = fmt.Errorf("PADDOCK_KUBE_QPS must be a number of requests per second, not %q", v)
		}
		c.KubeQPS = q
	}
	if v := getenv("PADDOCK_KUBE_BURST"); v != "" {
		b, err := strconv.Atoi(v)
		if err != nil {
			c.kubeEnvErr = errors.Join(c.kubeEnvErr, fmt.Errorf("PADDOCK_KUBE_BURST must be a whole number of requests, not %q", v))
		}
		c.KubeBurst = b
	}
	fs.Float64Var(&c.KubeQPS, "kube-qps", c.KubeQPS, "Kubernetes API requests per second, sustained, per process (PADDOCK_KUBE_QPS)")
	fs.IntVar(&c.KubeBurst, "kube-burst", c.KubeBurst, "Kubernetes API requests allowed at once above that rate (PADDOCK_KUBE_BURST)")
}

// checkKube reports a rate limit the clients cannot use.
func (c config) checkKube() error {
	switch {
	case c.kubeEnvErr != nil:
		return c.kubeEnvErr
	case c.KubeQPS <= 0:
		return fmt.Errorf("PADDOCK_KUBE_QPS (--kube-qps) must be above 0, not %g", c.KubeQPS)
	case c.KubeBurst < 1:
		return fmt.Errorf("PADDOCK_KUBE_BURST (--kube-burst) must be at least 1, not %d", c.KubeBurst)
	}
	return nil
}

// restConfig loads the cluster's client configuration (the kubeconfig, or
// the in-cluster one) with Paddock's rate limit.
func (c config) restConfig() (*rest.Config, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = c.Kubeconfig
	rc, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, nil).ClientConfig()
	if err != nil {
		return nil, fmt.Errorf("kubernetes config (set KUBECONFIG, run in a cluster, or use PADDOCK_CLUSTER=simulated): %w", err)
	}
	rc.QPS, rc.Burst = float32(c.KubeQPS), c.KubeBurst
	return rc, nil
}

// newLogger logs structured lines; records logged with an HTTP request's
// context carry its request id.
func newLogger(format string, w io.Writer) *slog.Logger {
	if format == "text" {
		return slog.New(web.LogHandler(slog.NewTextHandler(w, nil)))
	}
	return slog.New(web.LogHandler(slog.NewJSONHandler(w, nil)))
}

func cmdServe(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	var c config
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	commonFlags(fs, &c, getenv, ":8080", "kubernetes")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", getenv("PADDOCK_METRICS_ADDR"),
		"serve /metrics on this address instead of the main one, which then answers 404 there (PADDOCK_METRICS_ADDR)")
	fs.BoolVar(&c.Profiling, "pprof", envBool(getenv, "PADDOCK_PPROF", false),
		"also serve Go's profiler (net/http/pprof) under /debug/pprof/ on the metrics address; needs -metrics-addr (PADDOCK_PPROF)")
	fs.BoolVar(&c.SecureCookies, "secure-cookies", envBool(getenv, "PADDOCK_SECURE_COOKIES", true), "mark session cookies Secure; turn off only for plain-HTTP testing (PADDOCK_SECURE_COOKIES)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if err := c.checkKube(); err != nil {
		return err
	}
	if c.Profiling && c.MetricsAddr == "" {
		return errors.New("PADDOCK_PPROF needs PADDOCK_METRICS_ADDR: the profiler is served only on the metrics address, never on the one users reach")
	}
	if envBool(getenv, "PADDOCK_DEV_SIGNIN", false) {
		return errors.New("the dev sign-in page is only available in `portal dev`; `portal serve` refuses to start with PADDOCK_DEV_SIGNIN set")
	}
	if c.DatabaseURL == "" {
		return errNoDatabaseURL
	}
	auth, err := readAuthConfig(getenv)
	if err != nil {
		return err
	}
	c.Auth = auth
	log := newLogger(c.LogFormat, stderr)
	if auth.OIDC == nil && auth.Proxy == nil {
		log.Warn("no sign-in method is configured (PADDOCK_OIDC_ISSUER or PADDOCK_PROXY_AUTH): nobody can use the pages, only API tokens work")
	}
	return serve(ctx, c, log, nil)
}

func cmdMigrate(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	fs := flag.NewFlagSet("migrate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dbURL := fs.String("database-url", getenv("DATABASE_URL"), "PostgreSQL URL (DATABASE_URL)")
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	pool, err := openDB(ctx, *dbURL)
	if err != nil {
		return err
	}
	defer pool.Close()
	return store.Migrate(ctx, pool, newLogger("text", stderr))
}

// errNoDatabaseURL is what every command that needs the database says
// when it has none.
var errNoDatabaseURL = errors.New("DATABASE_URL is not set (or pass --database-url); with `make dev` running, use the URL it printed")

// openStore opens the database for a command-line subcommand; the
// returned function closes it.
func openStore(ctx context.Context, url string) (*store.Store, func(), error) {
	pool, err := openDB(ctx, url)
	if err != nil {
		return nil, nil, err
	}
	return store.New(pool), pool.Close, nil
}

// openDB connects a pool of at least 20 connections, or minConns when given.
// It is the one way every command opens the database.
func openDB(ctx context.Context, url string, minConns ...int32) (*pgxpool.Pool, error) {
	return openTracedDB(ctx, url, nil, minConns...)
}

// openTracedDB is openDB with a tracer that times the pool's statements
// (the server's, for /metrics).
func openTracedDB(ctx context.Context, url string, tracer *store.QueryMetrics, minConns ...int32) (*pgxpool.Pool, error) {
	if url == "" {
		return nil, errNoDatabaseURL
	}
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("DATABASE_URL is not a valid PostgreSQL URL: %w", err)
	}
	floor := int32(20)
	if len(minConns) > 0 {
		floor = max(floor, minConns[0])
	}
	if cfg.MaxConns < floor {
		cfg.MaxConns = floor
	}
	if tracer != nil {
		cfg.ConnConfig.Tracer = tracer
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	pingCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := pool.Ping(pingCtx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("connect to PostgreSQL at %s: %w", redactURL(url), err)
	}
	return pool, nil
}

// jobWorkers is every River worker of the portal, and the periodic jobs:
// the provisioner's (reconcile, rollout steps), the lease keeper, the
// webhook deliverer and the insight summary.
func jobWorkers(c config, st *store.Store, w *provision.Workers, log *slog.Logger) (*river.Workers, []*river.PeriodicJob) {
	workers := river.NewWorkers()
	w.Register(workers)
	periodic := c.Guardrails.register(st, workers, log)
	insight := &provision.Insight{Store: st, Log: log.With("component", "insight")}
	insight.Register(workers)
	return workers, append(periodic, insight.PeriodicJobs()...)
}

// serve runs the web server, the workers and the watcher until ctx ends. When
// ready is not nil it receives the listening address.
func serve(ctx context.Context, c config, log *slog.Logger, ready chan<- string) error {
	// A running job uses one connection at a time, and only between its
	// cluster calls (no transaction spans one); pages need the rest.
	queries := store.NewQueryMetrics()
	pool, err := openTracedDB(ctx, c.DatabaseURL, queries, int32(c.Workers+20))
	if err != nil {
		return err
	}
	defer pool.Close()
	if err := store.Migrate(ctx, pool, log); err != nil {
		return err
	}
	st := store.New(pool)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var cluster *provision.Cluster
	switch c.Cluster {
	case "simulated":
		var sim *provision.Simulator
		cluster, sim, err = provision.NewSimulatedCluster(ctx, st, log.With("component", "simulator"), c.SimDelay)
		if err != nil {
			return err
		}
		go sim.Run(ctx)
		log.Info("using the simulated cluster", "step_delay", c.SimDelay)
	case "kubernetes":
		rc, err := c.restConfig()
		if err != nil {
			return err
		}
		cluster, err = provision.NewKubernetesCluster(rc)
		if err != nil {
			return err
		}
		cluster.CreateNamespaces = c.CreateNamespaces
		log.Info("using a Kubernetes cluster", "host", rc.Host, "qps", rc.QPS, "burst", rc.Burst)
	default:
		return fmt.Errorf("PADDOCK_CLUSTER must be kubernetes or simulated, not %q", c.Cluster)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(queries)
	watcher := provision.NewNamespacedWatcher(st, cluster, log.With("component", "watcher"), c.WatchNamespace)
	pm := provision.NewMetrics(reg, watcher)
	watcher.Metrics = pm
	// The crash tests name a point of provisioning or reconciling where the
	// process kills itself.
	var failpoint func(string)
	if fp := c.Failpoint; fp != "" {
		failpoint = func(name string) {
			if name == fp {
				log.Warn("failpoint reached: killing the process", "failpoint", name)
				_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
			}
		}
	}
	watcher.Failpoint = failpoint
	watchDone := make(chan error, 1)
	go func() { watchDone <- watcher.Run(ctx, 4) }()

	if err := c.Guardrails.check(); err != nil {
		return err
	}
	workers, periodic := jobWorkers(c, st, &provision.Workers{Store: st, Cluster: cluster, Watcher: watcher,
		Log: log.With("component", "provisioner"), Metrics: pm, Failpoint: failpoint}, log)
	rcfg := &river.Config{
		PeriodicJobs:      periodic,
		Logger:            log.With("component", "river"),
		Workers:           workers,
		FetchCooldown:     5 * time.Millisecond,
		FetchPollInterval: time.Second,
		JobTimeout:        c.JobTimeout,
		// A job whose process died is retried this long after it started.
		RescueStuckJobsAfter: c.JobTimeout + max(5*time.Second, c.JobTimeout/5),
	}
	if c.Workers > 0 {
		rcfg.Queues = map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: c.Workers}}
	}
	jobs, err := river.NewClient(riverpgxv5.New(pool), rcfg)
	if err != nil {
		return fmt.Errorf("job client: %w", err)
	}
	st.SetJobClient(jobs)
	failed, stopFailed := jobs.Subscribe(river.EventKindJobFailed)
	defer stopFailed()
	go func() {
		for ev := range failed {
			pm.JobFailed(ev.Job.Kind)
		}
	}()
	if c.Workers > 0 {
		if err := jobs.Start(ctx); err != nil {
			return fmt.Errorf("start job workers: %w", err)
		}
	}

	srv := web.New(web.Config{DevSignIn: c.DevSignIn, SecureCookies: c.SecureCookies, ClusterName: c.Cluster, Registry: reg,
		OIDC: c.Auth.OIDC, Proxy: c.Auth.Proxy, TrustedProxies: c.Auth.TrustedProxies,
		SessionLifetime: c.Auth.SessionLifetime, SessionIdleTimeout: c.Auth.SessionIdleTimeout,
		SignInRate: c.Auth.SignInRate, APIRate: c.Auth.APIRate, LeaseGrace: c.Guardrails.LeaseGrace,
		Webhooks:        len(c.Guardrails.WebhookURLs) > 0,
		SeparateMetrics: c.MetricsAddr != "", ClusterLacks: watcher.Lacks}, st, cluster, watcher, log)
	go srv.Run(ctx)
	httpSrv := &http.Server{
		Handler:           srv.Handler(),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
		// In-flight requests are not cancelled by the signal: Shutdown lets them finish.
		BaseContext: func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
		ErrorLog:    slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	httpSrv.RegisterOnShutdown(srv.CloseStreams)
	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.Addr, err)
	}
	// The series are open to whoever reaches them: a listener of their own
	// lets a deployment keep them off the address users (and ingresses) see.
	var metricsSrv *http.Server
	var metricsLn net.Listener
	if c.MetricsAddr != "" {
		metricsLn, err = net.Listen("tcp", c.MetricsAddr)
		if err != nil {
			ln.Close()
			return fmt.Errorf("listen on %s for metrics: %w", c.MetricsAddr, err)
		}
		handler := srv.MetricsHandler()
		if c.Profiling {
			mux := http.NewServeMux()
			mux.Handle("/", handler)
			mux.HandleFunc("/debug/pprof/", pprof.Index)
			mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
			mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
			mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
			handler = mux
			log.Info("serving Go's profiler on the metrics address", "path", "/debug/pprof/")
		}
		metricsSrv = &http.Server{Handler: handler, ReadHeaderTimeout: 5 * time.Second,
			ReadTimeout: 30 * time.Second, WriteTimeout: 60 * time.Second, MaxHeaderBytes: 64 << 10,
			ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
		log.Info("serving metrics", "addr", metricsLn.Addr().String())
	}
	log.Info("listening", "addr", ln.Addr().String())
	if ready != nil {
		ready <- ln.Addr().String()
	}
	serveErr := make(chan error, 2)
	go func() { serveErr <- httpSrv.Serve(ln) }()
	if metricsSrv != nil {
		go func() { serveErr <- metricsSrv.Serve(metricsLn) }()
	}

	select {
	case <-ctx.Done():
	case err := <-serveErr:
		return fmt.Errorf("http server: %w", err)
	case err := <-watchDone:
		if err != nil {
			return err
		}
	}
	log.Info("shutting down", "timeout", c.ShutdownTimeout)
	shutCtx, shutCancel := context.WithTimeout(context.WithoutCancel(ctx), c.ShutdownTimeout)
	defer shutCancel()
	if err := httpSrv.Shutdown(shutCtx); err != nil {
		log.Warn("http shutdown", "err", err)
	}
	if metricsSrv != nil {
		_ = metricsSrv.Shutdown(shutCtx)
	}
	if c.Workers > 0 {
		if err := jobs.Stop(shutCtx); err != nil {
			log.Warn("jobs did not finish in time; they will be retried", "err", err)
			_ = jobs.StopAndCancel(context.WithoutCancel(ctx))
		}
	}
	return nil
}

// redactURL hides the password of a database URL for messages.
func redactURL(raw string) string {
	cfg, err := pgx.ParseConfig(raw)
	if err != nil {
		return "the database"
	}
	if cfg.Host != "" && cfg.Host[0] == '/' {
		return fmt.Sprintf("socket %s (database %s)", cfg.Host, cfg.Database)
	}
	return fmt.Sprintf("%s:%d (database %s)", cfg.Host, cfg.Port, cfg.Database)
}
