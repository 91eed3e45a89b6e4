package testpeer

import (
	"errors"
	"os/exec"
	"testing"
)

// Swaks runs swaks, the SMTP test client from the Debian package swaks,
// with args and an SMTP transaction timeout of 20 seconds. It returns the
// transcript (standard output and error together) and the exit code, so
// that a test can check a rejection too. It fails the test only when swaks
// cannot run at all.
func Swaks(t testing.TB, args ...string) (transcript string, exitCode int) {
	t.Helper()
	path := Require(t, "swaks", "swaks")
	out, err := exec.Command(path, append([]string{"--timeout", "20"}, args...)...).CombinedOutput()
	var exitErr *exec.ExitError
	if errors.As(err, &exitErr) {
		return string(out), exitErr.ExitCode()
	}
	if err != nil {
		t.Fatalf("running swaks %v: %v", args, err)
	}
	return string(out), 0
}
