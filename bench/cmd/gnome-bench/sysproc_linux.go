package main

import "syscall"

// childAttr makes the kernel kill a server left behind if the benchmark
// itself dies.
func childAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
