// Command console measures the browser console (issue 18) on the real
// kube-apiserver of internal/kubetest, through three paths to the same
// stand-in for virt-api (its RFB 3.8 server and serial login prompt), in
// one run and interleaved, so that the machine's load falls on all three:
//
//   - direct: a websocket straight to the stand-in (TLS, subprotocol
//     plain.kubevirt.io), as virt-api would be reached from inside the
//     cluster — the baseline;
//   - aggregator: provision.Cluster.OpenConsole as the RBAC-bound
//     provisioner, i.e. KubeVirt's client through kube-apiserver's
//     aggregator, without Paddock's bridge;
//   - Paddock: the browser's websocket to Paddock's handler (signed-in
//     cookie, Origin checked), bridged by Paddock to OpenConsole.
//
// For each path it measures the throughput of full (non-incremental)
// framebuffer updates as a VNC viewer requests them one after another, the
// round trip of one byte on the serial console and its echo, and the time
// to open a VNC console up to the end of the RFB handshake. It prints a
// Markdown section and, with -out, writes it into BENCHMARKS.md between its
// markers. `make bench-console` runs it.
//
//	go run ./internal/bench/console -out BENCHMARKS.md
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"

	"paddock/internal/bench/stamp"
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

// options are the sizes of one run.
type options struct {
	dbURL    string
	out      string
	rounds   int
	frames   int
	warmup   int
	echoes   int
	connects int
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("console-bench", flag.ContinueOnError)
	def := os.Getenv("PADDOCK_BENCH_CONSOLE_DATABASE_URL")
	if def == "" {
		def = "postgres://postgres@127.0.0.1:5432/paddock_bench_console?sslmode=disable"
	}
	fs.StringVar(&o.dbURL, "database-url", def, "a dedicated database, dropped and re-created (PADDOCK_BENCH_CONSOLE_DATABASE_URL)")
	fs.StringVar(&o.out, "out", "", "also write the section into this file, between the bench-console markers (e.g. BENCHMARKS.md)")
	fs.IntVar(&o.rounds, "rounds", 20, "throughput rounds; each path reads -frames frames per round, in turn")
	fs.IntVar(&o.frames, "frames", 50, "full-screen updates read per path and round")
	fs.IntVar(&o.warmup, "warmup", 10, "updates and echoes per path not counted, before measuring")
	fs.IntVar(&o.echoes, "echoes", 1000, "serial console round trips measured per path")
	fs.IntVar(&o.connects, "connects", 30, "VNC consoles opened per path for the open time")
	if err := fs.Parse(args); err != nil {
		return err
	}
	for name, v := range map[string]int{"rounds": o.rounds, "frames": o.frames, "echoes": o.echoes, "connects": o.connects} {
		if v < 1 {
			return fmt.Errorf("-%s must be at least 1", name)
		}
	}
	if o.warmup < 0 {
		return fmt.Errorf("-warmup must not be negative")
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))

	rep := &report{opts: o, machine: machine()}
	log.Info("machine", "summary", rep.machine)
	r, err := setup(ctx, o, log)
	if err != nil {
		return err
	}
	defer r.close()

	log.Info("measuring throughput", "rounds", o.rounds, "frames", o.frames)
	if rep.throughput, err = r.throughput(ctx, o); err != nil {
		return fmt.Errorf("throughput: %w", err)
	}
	rep.screen = r.screen
	log.Info("measuring serial echo", "samples", o.echoes)
	if rep.echo, err = r.echo(ctx, o); err != nil {
		return fmt.Errorf("serial echo: %w", err)
	}
	log.Info("measuring console open", "samples", o.connects)
	if rep.open, err = r.opens(ctx, o); err != nil {
		return fmt.Errorf("open: %w", err)
	}
	// Paddock bridged one VNC session for the throughput, one serial
	// session for the echo, and one per open.
	rep.bridged = 2 + o.connects
	if rep.audited, err = r.audited(ctx, rep.bridged); err != nil {
		return err
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
	beginMark = "<!-- bench-console:begin (written by `make bench-console`) -->"
	endMark   = "<!-- bench-console:end -->"
)

// splice writes section between the markers in file (stamp.Splice), with
// a heading when the file has no markers yet.
func splice(file, section string) error {
	return stamp.Splice(file, beginMark, endMark, section, "## Browser console (issue 18)\n\n"+
		"`make bench-console` runs [`internal/bench/console`](internal/bench/console) and rewrites "+
		"everything between its markers below: method, machine, figures and conclusions, all written by the program from one run.\n\n")
}
