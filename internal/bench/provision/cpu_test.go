package main

import (
	"os"
	"testing"
	"time"
)

// TestRunCPUCountsTheMachineAndThisProcess: between two readings around a
// busy loop, the machine's busy time is within its total, this program's
// CPU time grew by about as much as it spun, and counting it as the portal
// (by PID) gives the same.
func TestRunCPUCountsTheMachineAndThisProcess(t *testing.T) {
	before, err := readRunCPU(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for start := time.Now(); time.Since(start) < 300*time.Millisecond; {
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
