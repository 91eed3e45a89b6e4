package qemu

import (
	"os/exec"
	"syscall"
)

// setProcAttr makes the kernel kill QEMU when the thread that started it
// exits, so that a test binary killed by its timeout leaves no QEMU behind
// holding the forwarded ports.
//
// NOTE: the kernel sends the signal when the starting OS thread exits, not
// the process. The Go runtime ends a thread only after a goroutine locked to
// it exits.
func setProcAttr(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
