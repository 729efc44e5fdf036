package e2e

import (
	"os/exec"
	"syscall"
)

// dieWithTest makes the kernel kill the child if the test process dies
// first (a go test timeout, say), so no `portal dev` outlives its test.
func dieWithTest(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
