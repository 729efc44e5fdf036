// Command provision measures Paddock's provisioning path against a real
// kube-apiserver (internal/kubetest) and PostgreSQL, each figure beside a
// baseline measured in the same run:
//
//   - submit: store.SubmitRequest (auto-approved) until the VirtualMachine
//     exists in the API server, at 1 and 20 concurrent submitters, against one
//     bare INSERT transaction plus one bare VirtualMachine create;
//   - throughput: sustained submits per second until every VM exists, with
//     lost and duplicated VMs counted, against pgbench's one-insert-per-
//     transaction TPS on the same database;
//   - front: what a user's script sees: POST /api/v1/requests to `portal
//     serve` with its default settings from 20 clients until each VM exists,
//     against a bare client-go create loop with the same concurrency and the
//     portal's default QPS and burst;
//   - pages: p50/p99 of the catalog, VM list and history pages under 50
//     concurrent clients with 100 templates, 10,000 running VMs and 1,000,000
//     historical requests, against /healthz of the same server;
//   - memory: the resident set of `portal serve` watching N VMs and VMIs,
//     against the same binary watching none.
//
// It prints a Markdown table. `make bench-provision` runs it.
//
//	go run ./internal/bench/provision -only submit,throughput,front,pages,memory
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"os/signal"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"paddock/internal/bench/stamp"
	"paddock/internal/kubetest"
	"paddock/internal/store"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// provisionerUser is the identity the provisioner runs as: bound to exactly
// deploy/rbac.yaml, as in production.
const provisionerUser = "paddock-bench-provisioner"

type options struct {
	only         map[string]bool
	profiles     string
	dbURL        string
	samples1     int
	samples20    int
	throughputN  int
	memoryVMs    int
	frontN       int
	frontClients int
	pgbenchSecs  int
	pageSecs     int
	out          string
	portal       string

	throughputTeams []int
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("provision-bench", flag.ContinueOnError)
	only := fs.String("only", "submit,throughput,front,pages,memory", "comma-separated items to run: submit, throughput, front, pages, memory")
	def := os.Getenv("PADDOCK_BENCH_PROVISION_DATABASE_URL")
	if def == "" {
		def = "postgres://postgres@127.0.0.1:5432/paddock_bench_provision?sslmode=disable"
	}
	fs.StringVar(&o.dbURL, "database-url", def, "a dedicated database, dropped and re-created (PADDOCK_BENCH_PROVISION_DATABASE_URL)")
	fs.IntVar(&o.samples1, "samples-1", 100, "submits measured with one submitter")
	fs.IntVar(&o.samples20, "samples-20", 400, "submits measured with 20 submitters")
	fs.IntVar(&o.throughputN, "throughput-n", 2000, "requests submitted for the sustained rate")
	fs.IntVar(&o.frontN, "front-n", 1000, "requests the front-door item sends through the HTTP API (and VMs its bare loop creates)")
	fs.IntVar(&o.frontClients, "front-clients", 20, "concurrent API clients (and bare-loop goroutines) of the front-door item")
	fs.IntVar(&o.memoryVMs, "memory-vms", 10000, "VMs (and as many VMIs) the memory item creates")
	fs.IntVar(&o.pgbenchSecs, "pgbench-seconds", 15, "how long pgbench runs")
	fs.StringVar(&o.out, "out", "", "also write the table into this file, between the bench-provision markers (e.g. BENCHMARKS.md)")
	fs.StringVar(&o.portal, "portal", "", "a portal binary built from this tree (default: build one)")
	fs.IntVar(&o.pageSecs, "page-seconds", 15, "how long the load generator runs per page")
	fs.StringVar(&o.profiles, "profiles", "", "keep the portal's CPU profile of each page in this directory, for `go tool pprof`")
	teams := fs.String("throughput-teams", "1,20", "comma-separated team counts the 20 submitters are spread over, one sustained run each")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for _, t := range strings.Split(*teams, ",") {
		k, err := strconv.Atoi(strings.TrimSpace(t))
		if err != nil || k < 1 || k > 20 {
			return fmt.Errorf("-throughput-teams: %q is not a count from 1 to 20", t)
		}
		o.throughputTeams = append(o.throughputTeams, k)
	}
	if o.profiles != "" {
		// Made now, not found missing after minutes of seeding.
		if err := os.MkdirAll(o.profiles, 0o755); err != nil {
			return fmt.Errorf("-profiles: %w", err)
		}
	}
	o.only = map[string]bool{}
	for _, s := range strings.Split(*only, ",") {
		o.only[strings.TrimSpace(s)] = true
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))

	rep := &report{}
	rep.machine = machine()
	log.Info("machine", "summary", rep.machine)

	log.Info("starting kube-apiserver, etcd and KubeVirt's webhooks")
	env, err := kubetest.Start(ctx)
	if err != nil {
		return err
	}
	defer func() { _ = env.Stop() }()
	if err := env.ApplyPaddockRBAC(ctx, provisionerUser); err != nil {
		return err
	}

	if o.only["submit"] || o.only["throughput"] {
		pool, err := freshDB(ctx, o.dbURL)
		if err != nil {
			return err
		}
		err = provisioning(ctx, env, pool, o, rep, log)
		pool.Close()
		rep.failed("submit/throughput", err, log)
	}
	if o.only["front"] || o.only["pages"] || o.only["memory"] {
		dir, err := os.MkdirTemp("", "paddock-bench-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(dir)
		log.Info("building portal")
		bin, kubeconfig, err := buildPortal(ctx, env, dir, o.portal)
		if err != nil {
			return err
		}
		if o.only["front"] {
			rep.failed("front door", frontDoor(ctx, env, bin, kubeconfig, suffixDB(o.dbURL, "_front"), o, rep, log), log)
		}
		if o.only["pages"] {
			rep.failed("pages", pages(ctx, env, bin, kubeconfig, suffixDB(o.dbURL, "_pages"), o, rep, log), log)
		}
		if o.only["memory"] {
			rep.failed("memory", memory(ctx, env, bin, kubeconfig, suffixDB(o.dbURL, "_mem"), o, rep, log), log)
		}
	}
	rep.loadAfter = loadavg()
	var buf strings.Builder
	rep.write(&buf)
	fmt.Fprint(stdout, buf.String())
	if o.out != "" {
		return splice(o.out, buf.String())
	}
	return nil
}

const (
	beginMark = "<!-- bench-provision:begin (written by `make bench-provision`) -->"
	endMark   = "<!-- bench-provision:end -->"
)

// splice writes table between the markers in file (stamp.Splice).
func splice(file, table string) error {
	return stamp.Splice(file, beginMark, endMark, table, "")
}

// suffixDB names a sibling database of dbURL's.
func suffixDB(dbURL, suffix string) string {
	u, err := url.Parse(dbURL)
	if err != nil {
		return dbURL
	}
	u.Path += suffix
	return u.String()
}

// freshDB drops and re-creates the database of dbURL and migrates it.
func freshDB(ctx context.Context, dbURL string) (*pgxpool.Pool, error) {
	u, err := url.Parse(dbURL)
	if err != nil {
		return nil, fmt.Errorf("database URL: %w", err)
	}
	name := strings.TrimPrefix(u.Path, "/")
	admin := *u
	admin.Path = "/postgres"
	conn, err := pgx.Connect(ctx, admin.String())
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	defer conn.Close(ctx)
	id := pgx.Identifier{name}.Sanitize()
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+id+" WITH (FORCE)"); err != nil {
		return nil, err
	}
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+id); err != nil {
		return nil, err
	}
	cfg, err := pgxpool.ParseConfig(dbURL)
	if err != nil {
		return nil, err
	}
	// What `portal serve` uses, plus room for the benchmark's own clients.
	cfg.MaxConns = 40
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	if err := store.Migrate(ctx, pool, slog.New(slog.DiscardHandler)); err != nil {
		pool.Close()
		return nil, err
	}
	return pool, nil
}

// machine describes where the figures were measured.
func machine() string {
	model := "unknown CPU"
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				model = strings.TrimSpace(v)
				break
			}
		}
	}
	mem := "unknown memory"
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if strings.HasPrefix(l, "MemTotal:") {
				var kb int64
				fmt.Sscanf(strings.TrimSpace(strings.TrimPrefix(l, "MemTotal:")), "%d", &kb)
				mem = fmt.Sprintf("%.1f GiB RAM", float64(kb)/(1<<20))
			}
		}
	}
	return fmt.Sprintf("%d CPUs (%s), %s, %s/%s, %s; load average at start %s",
		runtime.NumCPU(), model, mem, runtime.GOOS, runtime.GOARCH, runtime.Version(), loadavg())
}

func loadavg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// since formats a duration in milliseconds with two decimals.
func ms(d time.Duration) string { return fmt.Sprintf("%.2f ms", float64(d)/float64(time.Millisecond)) }
