//go:build linux

package kubetest

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// childProcAttr makes a child process die with the test binary.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}

// reapOrphans kills etcd, kube-apiserver, kubevirt-webhooks,
// kube-controller-manager and virt-controller processes run from binDir
// whose parent has died (a test binary that panicked or timed
// out never ran Stop; envtest starts its processes without a death signal).
// Processes of test binaries still running keep their parent and are left
// alone.
func reapOrphans(binDir string) {
	ours := map[string]bool{}
	for _, name := range []string{"etcd", "kube-apiserver", "kubevirt-webhooks", "kube-controller-manager", "virt-controller"} {
		ours[filepath.Join(binDir, name)] = true
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return
	}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		exe, err := os.Readlink(filepath.Join("/proc", e.Name(), "exe"))
		if err != nil || !ours[strings.TrimSuffix(exe, " (deleted)")] {
			continue
		}
		if ppid(pid) != 1 {
			continue
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}

// reapStaleDirs removes the temporary directories of Envs whose owning
// process is gone (it ended without calling Stop).
func reapStaleDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), tmpDirPrefix+"*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, ownerFile))
		if err != nil {
			continue
		}
		pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || pid <= 0 || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); err == syscall.ESRCH {
			_ = os.RemoveAll(d)
		}
	}
}

func ppid(pid int) int {
	b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return -1
	}
	// pid (comm) state ppid ...; comm may contain spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return -1
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return -1
	}
	n, err := strconv.Atoi(f[1])
	if err != nil {
		return -1
	}
	return n
}
