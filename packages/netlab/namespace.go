package netlab

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// InNamespace runs fn on a locked OS thread that has joined the network
// namespace ns, and returns fn's error. Sockets that fn opens itself stay in
// ns for their whole life, but goroutines that fn starts run on other threads
// outside ns: net/http, for one, dials in a goroutine of its own. To run such
// code inside ns, start a process there with Command.
func (h *Home) InNamespace(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		errc <- runInNamespace(ns, fn)
	}()
	return <-errc
}

// setSysctl writes value to /proc/sys/key inside ns. The files under
// /proc/sys/net belong to the network namespace of the thread that opens
// them, so no sysctl program is needed.
func (h *Home) setSysctl(ns, key, value string) {
	h.t.Helper()
	path := filepath.Join("/proc/sys", key)
	err := h.InNamespace(ns, func() error {
		return os.WriteFile(path, []byte(value), 0o644)
	})
	if err != nil {
		h.t.Fatalf("netlab: setting %s to %s in %s: %v", path, value, ns, err)
	}
}

// runInNamespace switches the calling goroutine's thread into ns and back. A
// thread that cannot switch back stays locked, so the runtime ends it with
// the goroutine instead of reusing it elsewhere.
func runInNamespace(ns string, fn func() error) error {
	runtime.LockOSThread()

	own, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("opening the thread's own network namespace: %w", err)
	}
	defer unix.Close(own)

	target, err := unix.Open("/run/netns/"+ns, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("opening network namespace %s: %w", ns, err)
	}
	defer unix.Close(target)

	if err := unix.Setns(target, unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("joining network namespace %s: %w", ns, err)
	}

	fnErr := fn()

	if err := unix.Setns(own, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("leaving network namespace %s: %w (the thread ends with this goroutine)", ns, err)
	}
	runtime.UnlockOSThread()
	return fnErr
}
