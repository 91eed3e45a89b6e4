// Command heimwolke-agent keeps the box reachable and up to date: dynamic DNS,
// certificates and updates. It runs apart from heimwolke so that it can repair
// or roll back the box while heimwolke is failing. So far it serves the
// control API: its status, and the settings that the setup wizard sends.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/heimwolke/heimwolke/agent/controlapi"
	"github.com/heimwolke/heimwolke/packages/control"
	"github.com/heimwolke/heimwolke/packages/logging"
	"github.com/heimwolke/heimwolke/packages/version"
)

func main() {
	showVersion := flag.Bool("version", false, "print the version and exit")
	logConsole := flag.Bool("log-console", false, "copy log lines to /dev/console (the box's serial console)")
	socketPath := flag.String("control-socket", control.AgentSocket, "Unix socket path of the control API that heimwolke calls")
	stateDir := flag.String("state-dir", "/perm/heimwolke/agent", "folder for the agent's settings, created when the first settings arrive")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "heimwolke-agent: unexpected argument %q; run heimwolke-agent -h for the options\n", flag.Arg(0))
		os.Exit(2)
	}

	if *showVersion {
		fmt.Println(version.Version)
		return
	}

	log := logging.Setup("heimwolke-agent", slog.LevelInfo, *logConsole)
	if err := run(*socketPath, *stateDir, log); err != nil {
		log.Error("agent stopped", "err", err)
		os.Exit(1)
	}
}

// run serves the control API until SIGTERM or an interrupt arrives.
func run(socketPath, stateDir string, log *slog.Logger) error {
	log.Info("agent starting", "version", version.Version, "pid", os.Getpid(), "control_socket", socketPath, "state_dir", stateDir)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	agent, err := controlapi.New(controlapi.Options{StateDir: stateDir, Version: version.Version, Logger: log})
	if err != nil {
		return err
	}
	if err := agent.Serve(ctx, socketPath); err != nil {
		return err
	}
	log.Info("agent stopped")
	return nil
}
