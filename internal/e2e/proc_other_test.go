//go:build !linux

package e2e

import "os/exec"

// dieWithTest does nothing where the kernel cannot tie a child's life to its
// parent's; the test's cleanup still stops the child.
func dieWithTest(*exec.Cmd) {}
