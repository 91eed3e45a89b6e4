package portmap

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"sync"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/packages/netlab"
	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// The tests run the mapper in a child process inside the box's namespace,
// because goupnp's HTTP client dials on goroutines that a namespace switch of
// one thread would not cover. The child is this test binary running
// TestHelperMapper. It prints its State as one JSON line whenever the state
// changes, and it shuts down, removing its mappings, when its standard input
// closes.

const helperEnv = "HEIMWOLKE_PORTMAP_HELPER"

// helperConfig is what the parent test sends to the child in helperEnv.
type helperConfig struct {
	Ports         []uint16
	Protocols     []Protocol
	Lease         time.Duration
	RetryInterval time.Duration
	// External makes the child print ExternalIPv4's result and exit.
	External bool
}

// helperLine is one line of the child's output.
type helperLine struct {
	State    *State `json:",omitempty"`
	External string `json:",omitempty"`
	Error    string `json:",omitempty"`
	Done     bool   `json:",omitempty"`
}

func TestHelperMapper(t *testing.T) {
	raw := os.Getenv(helperEnv)
	if raw == "" {
		t.Skip("runs only as the child process of the namespace tests")
	}
	var hc helperConfig
	if err := json.Unmarshal([]byte(raw), &hc); err != nil {
		t.Fatalf("parsing %s: %v", helperEnv, err)
	}
	out := json.NewEncoder(os.Stdout)
	m := New(Config{
		Ports:         hc.Ports,
		Protocols:     hc.Protocols,
		Lease:         hc.Lease,
		RetryInterval: hc.RetryInterval,
		Retries:       3,
		Logger:        slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})

	if hc.External {
		addr, err := m.ExternalIPv4(context.Background())
		line := helperLine{External: addr.String(), Done: true}
		if err != nil {
			line.Error = err.Error()
		}
		out.Encode(line)
		return
	}

	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	done := make(chan error, 1)
	go func() { done <- m.Run(ctx) }()

	var last time.Time
	for {
		select {
		case err := <-done:
			s := m.State()
			line := helperLine{State: &s, Done: true}
			if err != nil {
				line.Error = err.Error()
			}
			out.Encode(line)
			return
		case <-time.After(50 * time.Millisecond):
		}
		if s := m.State(); !s.Updated.Equal(last) {
			last = s.Updated
			out.Encode(helperLine{State: &s})
		}
	}
}

// child is a mapper running in the box's namespace.
type child struct {
	cmd   *exec.Cmd
	stdin io.WriteCloser
	log   *testpeer.Buffer

	mu      sync.Mutex
	changed chan struct{} // closed and replaced at every new line
	last    helperLine
	exited  chan struct{}
}

// startChild starts the mapper in the box's namespace; the test's cleanup
// stops it if the test did not.
func startChild(t testing.TB, h *netlab.Home, hc helperConfig) *child {
	t.Helper()
	raw, err := json.Marshal(hc)
	if err != nil {
		t.Fatal(err)
	}
	c := &child{
		cmd:     h.Command(h.Box, os.Args[0], "-test.run=^TestHelperMapper$"),
		log:     &testpeer.Buffer{},
		changed: make(chan struct{}),
		exited:  make(chan struct{}),
	}
	c.cmd.Env = append(os.Environ(), helperEnv+"="+string(raw))
	c.cmd.Stderr = c.log

	stdout, err := c.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if c.stdin, err = c.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("starting the mapper in %s: %v", h.Box, err)
	}
	go c.read(stdout)

	t.Cleanup(func() {
		c.stdin.Close()
		select {
		case <-c.exited:
		case <-time.After(30 * time.Second):
			c.cmd.Process.Kill()
			<-c.exited
		}
		if t.Failed() {
			t.Logf("mapper log:\n%s", c.log)
		}
	})
	return c
}

func (c *child) read(stdout io.Reader) {
	s := bufio.NewScanner(stdout)
	s.Buffer(nil, 1<<20)
	for s.Scan() {
		var line helperLine
		if err := json.Unmarshal(s.Bytes(), &line); err != nil {
			c.log.Write([]byte("unparsable line from the mapper: " + s.Text() + "\n"))
			continue
		}
		c.mu.Lock()
		c.last = line
		close(c.changed)
		c.changed = make(chan struct{})
		c.mu.Unlock()
	}
	c.cmd.Wait()
	close(c.exited)
}

// waitFor waits until cond holds for the child's latest line and returns it.
func (c *child) waitFor(t testing.TB, timeout time.Duration, what string, cond func(helperLine) bool) helperLine {
	t.Helper()
	deadline := time.After(timeout)
	for {
		c.mu.Lock()
		line, changed := c.last, c.changed
		c.mu.Unlock()
		if cond(line) {
			return line
		}
		select {
		case <-changed:
		case <-c.exited:
			c.mu.Lock()
			line = c.last
			c.mu.Unlock()
			if cond(line) {
				return line
			}
			t.Fatalf("mapper exited before %s; last line %+v", what, line)
		case <-deadline:
			t.Fatalf("timed out after %v waiting for %s; last state %s", timeout, what, describe(line))
		}
	}
}

// stop closes the child's standard input, which cancels Run, and returns the
// final state.
func (c *child) stop(t testing.TB) State {
	t.Helper()
	c.stdin.Close()
	line := c.waitFor(t, 30*time.Second, "the mapper to stop", func(l helperLine) bool { return l.Done })
	<-c.exited
	if code := c.cmd.ProcessState.ExitCode(); code != 0 {
		// The race detector, for one, ends the child with status 66.
		t.Errorf("mapper exited with status %d, want 0; log:\n%s", code, c.log)
	}
	if line.State == nil {
		t.Fatalf("mapper stopped without a state: %+v", line)
	}
	return *line.State
}

// externalIPv4 runs ExternalIPv4 in the box's namespace.
func externalIPv4(t *testing.T, h *netlab.Home) (netip.Addr, string) {
	t.Helper()
	c := startChild(t, h, helperConfig{External: true, Protocols: []Protocol{ProtocolUPnP, ProtocolNATPMP}})
	line := c.waitFor(t, 30*time.Second, "ExternalIPv4", func(l helperLine) bool { return l.Done })
	addr, _ := netip.ParseAddr(line.External)
	return addr, line.Error
}

func describe(l helperLine) string {
	if l.State == nil {
		return "none"
	}
	b, _ := json.MarshalIndent(l.State, "", "  ")
	return string(b)
}

// allPorts reports whether every port in s satisfies cond.
func allPorts(s *State, cond func(PortState) bool) bool {
	if s == nil || len(s.Ports) == 0 {
		return false
	}
	for _, p := range s.Ports {
		if !cond(p) {
			return false
		}
	}
	return true
}
