package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"

	"paddock/internal/bench/stamp"
)

// report holds one run's figures and writes them, with the method and the
// conclusions drawn from them, as Markdown.
type report struct {
	opts      options
	machine   string
	loadAfter string
	screen    string
	// Per path, in the order of rig.paths: direct, aggregator, Paddock.
	throughput []rate
	echo       []stats
	open       []stats
	// audited is how many console sessions Paddock audited; bridged how
	// many it bridged.
	audited, bridged int
}

// Indexes of the paths in rig.paths.
const (
	direct = iota
	aggregator
	paddock
)

var pathNames = []string{"direct", "aggregator", "Paddock"}

// stats summarises latency samples.
type stats struct {
	n             int
	p50, p99, max time.Duration
}

func summarise(samples []time.Duration) stats {
	if len(samples) == 0 {
		return stats{}
	}
	s := slices.Clone(samples)
	slices.Sort(s)
	q := func(p float64) time.Duration {
		i := int(p*float64(len(s))+0.5) - 1
		return s[max(0, min(i, len(s)-1))]
	}
	return stats{n: len(s), p50: q(0.50), p99: q(0.99), max: s[len(s)-1]}
}

func (r *report) write(w io.Writer) {
	o := r.opts
	p := func(format string, args ...any) { fmt.Fprintf(w, format, args...) }
	p("Measured on %s, %s.\n\n", stamp.Commit(), time.Now().UTC().Format("2006-01-02 15:04 UTC"))
	p("Machine: %s; load average at the end %s.\n\n", r.machine, r.loadAfter)

	p("**Method.** One run starts the tests' real kube-apiserver and etcd (`internal/kubetest`) and registers the stand-in ")
	p("for virt-api as the APIService `v1.subresources.kubevirt.io` (an ExternalName Service to loopback, TLS with its own CA), ")
	p("as the console tests do. Behind it, the stand-in runs an RFB 3.8 server on a %s screen (32-bit pixels, raw encoding) ", r.screen)
	p("and a serial login prompt that echoes each typed character. One VM instance runs (its status written by the run), ")
	p("and one request of team payments owns it in a fresh database `paddock_bench_console`. The same console is reached three ways, all on loopback:\n\n")
	p("- *direct*: a websocket straight to the stand-in (TLS verified against its CA, subprotocol `plain.kubevirt.io`, binary frames) — the baseline;\n")
	p("- *aggregator*: `provision.Cluster.OpenConsole` as a user bound to exactly `deploy/rbac.yaml` — KubeVirt's client ")
	p("(`AsyncSubresourceHelper`) through kube-apiserver's aggregator, without Paddock's bridge;\n")
	p("- *Paddock*: a websocket to Paddock's console handler (`web.New(...).Handler()` on an `httptest` server, plain HTTP: ")
	p("no TLS on this leg) with a signed-in developer's cookie and Paddock's Origin — session, authorization, the bridge and ")
	p("its audit entry — which opens the console as *aggregator* does.\n\n")
	p("*Throughput*: on one VNC session per path, a viewer asks for a full (non-incremental) update of the whole screen ")
	p("and reads it to the last pixel before asking again, as a VNC viewer asks for the next update after each one; every ")
	p("update's pixel colour is checked. %d warm-up updates per path, then %d rounds of %d updates per path, the paths taking turns ", o.warmup, o.rounds, o.frames)
	p("and the order rotating each round, so that the machine's load falls on all three. MB/s is 10⁶ bytes of RFB ")
	p("messages read by the viewer per second (websocket framing not counted); *per round ÷ direct* divides a path's rate in a round ")
	p("by direct's in the same round, their turns back to back, so that a slow spell of the machine does not count as a path's cost. ")
	p("*Serial echo*: on one serial session per path, at the login prompt, write one character and read its echo; ")
	p("%d warm-up and %d measured round trips per path, the paths taking turns. ", o.warmup, o.echoes)
	p("*Open*: open a VNC console and complete the RFB handshake (ServerInit read), then close it; %d per path, taking turns.\n\n", o.connects)
	p("Real: kube-apiserver's aggregator and its proxying of the upgrade, KubeVirt's client, RBAC, Paddock's handler, ")
	p("session, authorization, bridge and audit on PostgreSQL, TLS between API server and stand-in. Simulated: the guest ")
	p("(the stand-in's RFB server and login prompt in the benchmark's process, not QEMU behind virt-handler) and the browser ")
	p("(a Go websocket client, not noVNC or xterm.js). The viewer, Paddock's handler and the stand-in run in the benchmark's one ")
	p("process, kube-apiserver in its own, all on the machine's cores: each hop's CPU (a TLS or websocket leg's both ends) is paid ")
	p("on the same cores, so a path with more hops pays for their CPU in these figures too.\n\n")

	t := r.throughput
	p("| Full-screen updates | Updates | MB read | Seconds | MB/s | MB/s per round (min – max) | One update p50 | p99 | MB/s ÷ direct | Per round ÷ direct (median) | Rounds slower than direct |\n")
	p("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n")
	for i, x := range t {
		ratio, slower := paired(x, t[direct])
		p("| %s | %d | %.1f | %.2f | %.1f | %.1f – %.1f | %s | %s | %.2f | %.2f | %d of %d |\n", pathNames[i], x.frames, float64(x.bytes)/1e6,
			x.took.Seconds(), x.mbps(), slices.Min(x.rounds), slices.Max(x.rounds), ms(x.perTurn.p50), ms(x.perTurn.p99),
			x.mbps()/t[direct].mbps(), ratio, slower, len(x.rounds))
	}
	p("\n")
	e := r.echo
	p("| Serial echo of one character | Samples | p50 | p99 | max | p50 − direct | p99 − direct |\n")
	p("|---|---:|---:|---:|---:|---:|---:|\n")
	for i, x := range e {
		p("| %s | %d | %s | %s | %s | %s | %s |\n", pathNames[i], x.n, ms(x.p50), ms(x.p99), ms(x.max), signed(x.p50-e[direct].p50), signed(x.p99-e[direct].p99))
	}
	p("\n")
	op := r.open
	if o.connects < 100 {
		p("With %d samples per path, the p99 of an open is its largest sample.\n\n", o.connects)
	}
	p("| Open VNC console to ServerInit | Samples | p50 | p99 | max | p50 − direct |\n")
	p("|---|---:|---:|---:|---:|---:|\n")
	for i, x := range op {
		p("| %s | %d | %s | %s | %s | %s |\n", pathNames[i], x.n, ms(x.p50), ms(x.p99), ms(x.max), signed(x.p50-op[direct].p50))
	}
	p("\n**Conclusions of this run** (computed from the figures above):\n\n")
	pd, ag, di := t[paddock].mbps(), t[aggregator].mbps(), t[direct].mbps()
	pdRatio, pdSlower := paired(t[paddock], t[direct])
	agRatio, agSlower := paired(t[aggregator], t[direct])
	brRatio, brSlower := paired(t[paddock], t[aggregator])
	n := len(t[direct].rounds)
	p("- Through Paddock, full-screen updates arrived at %.1f MB/s against %.1f MB/s direct and %.1f MB/s through the aggregator without Paddock's bridge. ", pd, di, ag)
	p("Round by round (the paths' turns back to back), Paddock's rate was a median %.2f× of direct's, the aggregator's %.2f× of direct's, ", pdRatio, agRatio)
	p("and Paddock's bridge kept %.2f× of the aggregator path's rate. ", brRatio)
	p("%s %s %s\n", verdict("Paddock's path", "direct", pdRatio, pdSlower, n),
		verdict("The aggregator", "direct", agRatio, agSlower, n),
		verdict("Paddock's bridge", "the aggregator path without it", brRatio, brSlower, n))
	bytesPerUpdate := float64(t[paddock].bytes) / float64(t[paddock].frames)
	perSec := func(x rate) float64 { return float64(x.frames) / x.took.Seconds() }
	p("- One full update of %.0f bytes took %s at p50 through Paddock against %s direct; over the whole measure one viewer got %.0f updates per second through Paddock against %.0f direct. ",
		bytesPerUpdate, ms(t[paddock].perTurn.p50), ms(t[direct].perTurn.p50), perSec(t[paddock]), perSec(t[direct]))
	const fullHD = 1920 * 1080 * 4
	p("At Paddock's measured rate, a raw full update of a 1920×1080 screen at 32 bits (%.1f MB) would take %.0f ms.\n", fullHD/1e6, fullHD/1e6/pd*1000)
	p("- A typed character's echo on the serial console took %s at p50 and %s at p99 through Paddock, against %s and %s direct. ",
		ms(e[paddock].p50), ms(e[paddock].p99), ms(e[direct].p50), ms(e[direct].p99))
	p("Of the %s Paddock adds at p50, the aggregator path accounts for %s and Paddock's bridge for %s (at p99: %s and %s of %s).\n",
		signed(e[paddock].p50-e[direct].p50), signed(e[aggregator].p50-e[direct].p50), signed(e[paddock].p50-e[aggregator].p50),
		signed(e[aggregator].p99-e[direct].p99), signed(e[paddock].p99-e[aggregator].p99), signed(e[paddock].p99-e[direct].p99))
	p("- Opening a VNC console took %s at p50 through Paddock, %s through the aggregator without Paddock and %s direct; ",
		ms(op[paddock].p50), ms(op[aggregator].p50), ms(op[direct].p50))
	p("Paddock's own part (the websocket to Paddock, and its session, authorization and request checks on PostgreSQL before the upgrade) is %s of it at p50.\n",
		signed(op[paddock].p50-op[aggregator].p50))
	p("- Paddock wrote %d audit entries for the %d console sessions it bridged in this run.\n", r.audited, r.bridged)
}

// paired compares x with base round by round (their turns ran back to
// back): the median ratio of their rates and in how many rounds x was
// slower.
func paired(x, base rate) (median float64, slower int) {
	ratios := make([]float64, len(x.rounds))
	for i := range x.rounds {
		ratios[i] = x.rounds[i] / base.rounds[i]
		if x.rounds[i] < base.rounds[i] {
			slower++
		}
	}
	slices.Sort(ratios)
	m := len(ratios) / 2
	if len(ratios)%2 == 0 {
		return (ratios[m-1] + ratios[m]) / 2, slower
	}
	return ratios[m], slower
}

// consistent reports whether a path was slower in at least four rounds
// out of five.
func consistent(slower, rounds int) bool { return 5*slower >= 4*rounds }

// verdict says whether subject's throughput was consistently lower than
// than's in this run (in four rounds of five) and by how much, or that the
// run does not show it.
func verdict(subject, than string, ratio float64, slower, rounds int) string {
	if consistent(slower, rounds) {
		return fmt.Sprintf("%s was consistently slower than %s (%d of %d rounds), by a median %.0f%%.", subject, than, slower, rounds, 100*(1-ratio))
	}
	return fmt.Sprintf("%s was not consistently slower than %s (%d of %d rounds): the machine's load varied more than they differ.", subject, than, slower, rounds)
}

// ms formats a duration in milliseconds.
func ms(d time.Duration) string { return fmt.Sprintf("%.3f ms", float64(d)/float64(time.Millisecond)) }

// signed formats a difference in milliseconds with its sign.
func signed(d time.Duration) string {
	return fmt.Sprintf("%+.3f ms", float64(d)/float64(time.Millisecond))
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
