//go:build !linux

package qemu

import "os/exec"

func setProcAttr(cmd *exec.Cmd) {}
