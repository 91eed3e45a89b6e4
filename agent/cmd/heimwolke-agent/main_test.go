package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/packages/control"
)

// runAsAgentEnv makes the test binary run main instead of the tests, so
// that a test can start the agent as a process of its own.
const runAsAgentEnv = "HEIMWOLKE_TEST_RUN_AGENT"

func TestMain(m *testing.M) {
	if os.Getenv(runAsAgentEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// agentProcess is heimwolke-agent running in a child process.
type agentProcess struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	done   chan error
}

func startAgent(t *testing.T, socket, stateDir string) *agentProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], "--control-socket", socket, "--state-dir", stateDir)
	cmd.Env = append(os.Environ(), runAsAgentEnv+"=1")
	p := &agentProcess{cmd: cmd, stderr: &bytes.Buffer{}, done: make(chan error, 1)}
	cmd.Stderr = p.stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the agent: %v", err)
	}
	go func() { p.done <- cmd.Wait() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-p.done
		}
	})

	for range 500 {
		select {
		case err := <-p.done:
			t.Fatalf("agent exited early: %v; stderr:\n%s", err, p.stderr)
		default:
		}
		if conn, err := net.Dial("unix", socket); err == nil {
			conn.Close()
			return p
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("agent socket %s not accepting connections after 5 s; stderr:\n%s", socket, p.stderr)
	return nil
}

// terminate sends SIGTERM and waits for the exit.
func (p *agentProcess) terminate(t *testing.T) error {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		return err
	case <-time.After(10 * time.Second):
		t.Fatalf("agent still running 10 s after SIGTERM; stderr:\n%s", p.stderr)
		return nil
	}
}

func TestAgentStopsOnSIGTERM(t *testing.T) {
	dir := t.TempDir()
	socket := filepath.Join(dir, "run", "control.sock")
	stateDir := filepath.Join(dir, "perm", "agent")

	first := startAgent(t, socket, stateDir)
	client := control.NewClient(socket)
	status, err := client.Status(context.Background())
	if err != nil || status.Program != "heimwolke-agent" {
		t.Fatalf("Status = %+v, %v; want program heimwolke-agent", status, err)
	}
	settings := control.Settings{
		SchemaVersion: control.SchemaVersion,
		Domain:        "example.org",
		Language:      "en",
		DNS:           control.DNSSettings{Provider: "desec", Hostname: "box.example.org", Token: "very-secret-token"},
		ACME:          control.ACMESettings{Email: "admin@example.org"},
		Updates:       control.UpdateSettings{Channel: "stable", Hour: 3},
	}
	if err := client.PutSettings(context.Background(), settings); err != nil {
		t.Fatalf("PutSettings: %v", err)
	}

	if err := first.terminate(t); err != nil {
		t.Fatalf("agent exit after SIGTERM: got %v, want exit status 0; stderr:\n%s", err, first.stderr)
	}
	if !strings.Contains(first.stderr.String(), `msg="agent stopped"`) {
		t.Errorf("log lacks the stop; stderr:\n%s", first.stderr)
	}
	if _, err := os.Lstat(socket); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket after SIGTERM: Lstat returned %v, want it removed", err)
	}

	second := startAgent(t, socket, stateDir)
	if err := second.terminate(t); err != nil {
		t.Fatalf("second agent exit: %v", err)
	}
	log := second.stderr.String()
	if !strings.Contains(log, `msg="settings loaded"`) || !strings.Contains(log, "box.example.org") {
		t.Errorf("second run did not load the settings; stderr:\n%s", log)
	}
	if strings.Contains(first.stderr.String()+log, "very-secret-token") {
		t.Errorf("log contains the DNS token; stderr:\n%s%s", first.stderr, log)
	}
}

func TestAgentFailsOnUnusableSocket(t *testing.T) {
	// A regular file where the socket belongs makes Serve fail.
	socket := filepath.Join(t.TempDir(), "control.sock")
	if err := os.WriteFile(socket, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(os.Args[0], "--control-socket", socket, "--state-dir", t.TempDir())
	cmd.Env = append(os.Environ(), runAsAgentEnv+"=1")
	out, err := cmd.CombinedOutput()
	var exitErr *exec.ExitError
	if !errors.As(err, &exitErr) || exitErr.ExitCode() != 1 {
		t.Fatalf("agent on a regular file: got %v, want exit status 1; output:\n%s", err, out)
	}
	if !strings.Contains(string(out), "not a socket") {
		t.Errorf("output lacks the reason; output:\n%s", out)
	}
}
