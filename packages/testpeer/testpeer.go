// Package testpeer finds the independent programs that protocol and image
// tests run against (unsquashfs, fsck.vfat, QEMU, ...). A missing program skips
// the test with one line that names the Debian package to install, except
// under CI=true, where a missing program fails the test: CI must install it.
// Buffer collects a peer's output while the test reads it. SelfSigned makes
// the TLS certificate that tests give to servers and clients, Swaks runs the
// SMTP test client, and FreePort picks a port for a peer.
package testpeer

import (
	"os"
	"os/exec"
	"testing"
)

// Require returns the path of the program name, which Debian ships in the
// package pkg. It skips the test when the program is missing, or fails it when
// the environment variable CI is "true".
func Require(t testing.TB, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err == nil {
		return path
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s not found: install the Debian package %s (.ci/run must install it)", name, pkg)
	}
	t.Skipf("%s not found: install the Debian package %s", name, pkg)
	return ""
}

// RequireRoot skips the test unless it runs as root, or fails it under
// CI=true, where the tests always run as root.
func RequireRoot(t testing.TB, why string) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("this test needs root (%s)", why)
	}
	t.Skipf("this test needs root (%s)", why)
}
