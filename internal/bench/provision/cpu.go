package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"
)

// clusterComms are the process names (/proc/PID/comm, at most 15 bytes) of
// the test cluster's processes: the API server, etcd and KubeVirt's
// admission webhooks, which every VM create goes through.
var clusterComms = map[string]bool{"kube-apiserver": true, "etcd": true, "kubevirt-webhoo": true}

// runCPU is what a stretch of a run cost the machine: its CPUs' busy and
// total time (from /proc/stat) and the CPU time of the cluster's
// processes, of PostgreSQL, of one portal and of this program.
type runCPU struct {
	busy, total                          time.Duration
	cluster, postgres, portal, generator time.Duration
}

// readRunCPU reads the counters runCPU is the difference of; portalPID 0
// is no portal.
func readRunCPU(portalPID int) (runCPU, error) {
	var c runCPU
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return c, err
	}
	// "cpu  user nice system idle iowait irq softirq steal ...", in ticks
	// summed over every CPU.
	line, _, _ := strings.Cut(string(b), "\n")
	f := strings.Fields(line)
	if len(f) < 9 || f[0] != "cpu" {
		return c, fmt.Errorf("/proc/stat: unexpected first line %q", line)
	}
	for i, s := range f[1:9] {
		v, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			return c, fmt.Errorf("/proc/stat: %w", err)
		}
		d := time.Duration(v) * clockTick
		c.total += d
		if i != 3 && i != 4 { // idle, iowait
			c.busy += d
		}
	}
	comms := map[string]bool{"postgres": true}
	for name := range clusterComms {
		comms[name] = true
	}
	for _, p := range procsCPU(comms) {
		if p.comm == "postgres" {
			c.postgres += p.cpu
		} else {
			c.cluster += p.cpu
		}
	}
	if portalPID != 0 {
		if c.portal, err = procCPU(portalPID); err != nil {
			return c, err
		}
	}
	c.generator, err = selfCPU()
	return c, err
}

// since is what was spent from o to c. A process that ended in between is
// not counted; one that started counts in full.
func (c runCPU) since(o runCPU) runCPU {
	return runCPU{busy: c.busy - o.busy, total: c.total - o.total, cluster: c.cluster - o.cluster,
		postgres: c.postgres - o.postgres, portal: c.portal - o.portal, generator: c.generator - o.generator}
}

// busyShare is the share of the machine's CPU time that was busy.
func (c runCPU) busyShare() float64 {
	if c.total <= 0 {
		return 0
	}
	return float64(c.busy) / float64(c.total)
}

// perVM is d divided among n VMs.
func perVM(d time.Duration, n int) string { return ms(d / time.Duration(n)) }

// quietShare is how busy the machine's CPUs may be, second by second, for
// waitQuiet to call the machine quiet.
const quietShare = 0.25

// waitQuiet waits until the machine's CPUs have been under quietShare busy
// for three one-second windows in a row (what the run before left behind,
// PostgreSQL's autovacuum and checkpoints, a portal starting, done), for
// at most limit. It returns how long it waited and whether the machine
// became quiet; a machine that stays busy is measured anyway, and the
// report says so.
func waitQuiet(ctx context.Context, limit time.Duration) (time.Duration, bool, error) {
	prev, err := readRunCPU(0)
	if err != nil {
		return 0, false, err
	}
	return untilQuiet(ctx, limit, func() (bool, error) {
		now, err := readRunCPU(0)
		if err != nil {
			return false, err
		}
		quiet := now.since(prev).busyShare() < quietShare
		prev = now
		return quiet, nil
	})
}

// untilQuiet calls quiet once a second until it has said yes three times in a
// row, for at most limit, and returns how long that took and whether it
// did.
func untilQuiet(ctx context.Context, limit time.Duration, quiet func() (bool, error)) (time.Duration, bool, error) {
	start := time.Now()
	for n := 0; n < 3; {
		if time.Since(start) > limit {
			return time.Since(start), false, nil
		}
		select {
		case <-ctx.Done():
			return 0, false, ctx.Err()
		case <-time.After(time.Second):
		}
		ok, err := quiet()
		if err != nil {
			return 0, false, err
		}
		if ok {
			n++
		} else {
			n = 0
		}
	}
	return time.Since(start), true, nil
}
