package main

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"
)

// TestRunCPUCountsTheMachineAndThisProcess: between two readings around a
// busy loop, the machine's busy time is within its total, this program's
// CPU time grew by about as much as it spun, and counting it as the portal
// (by PID) gives the same. The loop spins until getrusage says this
// process has used 300 ms of CPU, not for 300 ms of wall time, which a
// loaded machine may give it only part of.
func TestRunCPUCountsTheMachineAndThisProcess(t *testing.T) {
	used := func() time.Duration {
		var ru syscall.Rusage
		if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
			t.Fatal(err)
		}
		return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	before, err := readRunCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	start, from := time.Now(), used()
	for used()-from < 300*time.Millisecond {
		if time.Since(start) > time.Minute {
			t.Fatal("did not get 300 ms of CPU in a minute")
		}
	}
	after, err := readRunCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	d := after.since(before)
	if d.total <= 0 || d.busy < 0 || d.busy > d.total {
		t.Errorf("machine: busy %v of %v", d.busy, d.total)
	}
	if d.generator < 200*time.Millisecond || d.portal < 200*time.Millisecond {
		t.Errorf("this process spun 300ms; counted %v as the generator, %v as the portal", d.generator, d.portal)
	}
	if s := d.busyShare(); s <= 0 || s > 1 {
		t.Errorf("busy share %v", s)
	}
	if got := perVM(3*time.Millisecond, 2); got != "1.50 ms" {
		t.Errorf("perVM: %s", got)
	}
}

// TestUntilQuietNeedsThreeQuietSecondsInARow: a busy second starts the
// count again; a machine that never quiets down is given up on at the
// limit, without an error.
func TestUntilQuietNeedsThreeQuietSecondsInARow(t *testing.T) {
	ctx := context.Background()
	answers := []bool{true, false, true, true, true}
	calls := 0
	took, quiet, err := untilQuiet(ctx, time.Minute, func() (bool, error) {
		calls++
		return answers[calls-1], nil
	})
	if err != nil || !quiet || calls != 5 || took < 5*time.Second {
		t.Errorf("quiet %v after %d calls and %v (%v); want quiet after 5 calls", quiet, calls, took, err)
	}
	took, quiet, err = untilQuiet(ctx, 1500*time.Millisecond, func() (bool, error) { return false, nil })
	if err != nil || quiet || took < 1500*time.Millisecond {
		t.Errorf("never quiet: quiet %v after %v (%v); want not quiet after the limit", quiet, took, err)
	}
}
