// Command heimwolke-agent keeps the box reachable and up to date: dynamic DNS,
// certificates and updates. It runs apart from heimwolke so that it can repair
// or roll back the box while heimwolke is failing. So far it only starts,
// reports its version and waits.
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/heimwolke/heimwolke/packages/logging"
	"github.com/heimwolke/heimwolke/packages/version"
)

func main() {
	showVersion := flag.Bool("version", false, "print the version and exit")
	logConsole := flag.Bool("log-console", false, "copy log lines to /dev/console (the box's serial console)")
	flag.Parse()

	if *showVersion {
		fmt.Println(version.Version)
		return
	}

	log := logging.Setup("heimwolke-agent", slog.LevelInfo, *logConsole)
	log.Info("agent starting", "version", version.Version, "pid", os.Getpid())

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()
	<-ctx.Done()
	log.Info("agent stopping")
}
