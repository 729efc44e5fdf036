//go:build linux

package kubetest

import (
	"context"
	corev1 "k8s.io/api/core/v1"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// children lists this process's child processes running binaries from dir,
// with their command lines.
func children(t *testing.T, dir string) map[int][]string {
	t.Helper()
	out := map[int][]string{}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Skip("no /proc")
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || ppid(pid) != os.Getpid() {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil || filepath.Dir(exe) != dir {
			continue
		}
		b, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		out[pid] = strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	}
	return out
}

// TestStopCleansUp starts a second environment beside the shared one and
// checks Stop ends its processes and removes its files.
func TestStopCleansUp(t *testing.T) {
	needsCluster(t)
	before := children(t, env.BinDir)
	e2, err := Start(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var pids []int
	var dirs []string
	for pid, args := range children(t, env.BinDir) {
		if _, ok := before[pid]; ok {
			continue
		}
		pids = append(pids, pid)
		for _, a := range args {
			for _, flag := range []string{"--data-dir=", "--cert-dir="} {
				if strings.HasPrefix(a, flag) {
					dirs = append(dirs, strings.TrimPrefix(a, flag))
				}
			}
		}
	}
	dirs = append(dirs, e2.tmpDir)
	if len(pids) != 3 {
		t.Errorf("second environment runs %d processes, want 3 (etcd, kube-apiserver, kubevirt-webhooks)", len(pids))
	}
	if err := e2.Stop(); err != nil {
		t.Errorf("Stop: %v", err)
	}
	if err := e2.Stop(); err != nil {
		t.Errorf("second Stop: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for _, pid := range pids {
		for syscall.Kill(pid, 0) == nil {
			if time.Now().After(deadline) {
				t.Errorf("process %d still running after Stop", pid)
				break
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	for _, d := range dirs {
		if _, err := os.Stat(d); !os.IsNotExist(err) {
			t.Errorf("%s still there after Stop (%v)", d, err)
		}
	}
	// The shared environment is unaffected.
	if err := admin.List(context.Background(), &corev1.NamespaceList{}); err != nil {
		t.Errorf("shared environment after stopping another: %v", err)
	}
}
