// Command heimwolke serves everything the household uses from one process: for
// now the first-boot page and the health endpoint on port 80.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/heimwolke/heimwolke/appliance/web"
	"github.com/heimwolke/heimwolke/packages/logging"
	"github.com/heimwolke/heimwolke/packages/version"
)

func main() {
	showVersion := flag.Bool("version", false, "print the version and exit")
	httpAddr := flag.String("http", ":80", "address for the first-boot page and health endpoint (host:port)")
	dataDir := flag.String("data", "/perm/heimwolke", "folder for the box's persistent data")
	logConsole := flag.Bool("log-console", false, "copy log lines to /dev/console (the box's serial console)")
	debug := flag.Bool("debug", false, "log every request")
	flag.Parse()

	if *showVersion {
		fmt.Println(version.Version)
		return
	}

	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := logging.Setup("heimwolke", level, *logConsole)
	if err := run(*httpAddr, *dataDir, log); err != nil {
		log.Error("heimwolke stopped", "err", err)
		os.Exit(1)
	}
}

func run(httpAddr, dataDir string, log *slog.Logger) error {
	log.Info("heimwolke starting", "version", version.Version, "http", httpAddr, "data", dataDir)
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		// The page still works without its data folder, and the health
		// report then leaves out the storage figures.
		log.Error("creating data folder", "path", dataDir, "err", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	srv := web.NewServer(httpAddr, web.New(web.Options{Version: version.Version, DataDir: dataDir, Logger: log}), log)
	errc := make(chan error, 1)
	go func() { errc <- srv.ListenAndServe() }()
	log.Info("listening", "addr", httpAddr)

	select {
	case err := <-errc:
		return fmt.Errorf("serving HTTP on %s: %w", httpAddr, err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
