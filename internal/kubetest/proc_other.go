//go:build !linux

package kubetest

import "syscall"

func childProcAttr() *syscall.SysProcAttr { return nil }

func reapOrphans(string) {}

func reapStaleDirs() {}
