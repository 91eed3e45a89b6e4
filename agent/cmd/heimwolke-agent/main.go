// Command heimwolke-agent keeps the box reachable and up to date: dynamic DNS,
// certificates and updates. It runs apart from heimwolke so that it can repair
// or roll back the box while heimwolke is failing. It serves the control
// API (its status, and the settings that the setup wizard sends) and runs
// the jobs of those settings: certificates, dynamic DNS and the router's
// port mappings.
package main

import (
	"context"
	"crypto/x509"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/heimwolke/heimwolke/agent/controlapi"
	"github.com/heimwolke/heimwolke/agent/engine"
	"github.com/heimwolke/heimwolke/agent/netaddr"
	"github.com/heimwolke/heimwolke/packages/control"
	"github.com/heimwolke/heimwolke/packages/logging"
	"github.com/heimwolke/heimwolke/packages/tlsstore"
	"github.com/heimwolke/heimwolke/packages/version"
)

func main() {
	showVersion := flag.Bool("version", false, "print the version and exit")
	logConsole := flag.Bool("log-console", false, "copy log lines to /dev/console (the box's serial console)")
	socketPath := flag.String("control-socket", control.AgentSocket, "Unix socket path of the control API that heimwolke calls")
	stateDir := flag.String("state-dir", "/perm/heimwolke/agent", "folder for the agent's settings, created when the first settings arrive")
	tlsDir := flag.String("tls-dir", "/perm/heimwolke/tls", "folder of the certificates that heimwolke serves")
	hostname := flag.String("hostname", "heimwolke", "the box's LAN name without .local, for the local certificate")
	localNames := flag.String("local-names", "", "further comma-separated names for the local certificate, such as localhost")
	ipSources := flag.String("public-ip-dns", "208.67.222.222:53,216.239.32.10:53", "OpenDNS and Google name servers (host:port, comma-separated, in that order) that tell the box its public IPv4 address; empty: ask only the router")
	acmeDirectory := flag.String("acme-directory", "", "ACME directory URL that replaces the one in the settings, such as a local Pebble's https://127.0.0.1:14000/dir; empty: the settings' (Let's Encrypt)")
	acmeRoots := flag.String("acme-roots", "", "PEM file of the root certificates that the ACME server's HTTPS certificate chains to; empty: the system's roots")
	dnsResolvers := flag.String("dns-resolvers", "", "comma-separated DNS servers (host:port) that find the zone and check the challenge records for ACME DNS-01, such as a local test server; empty: the ones in /etc/resolv.conf")
	checkRebind := flag.Bool("check-rebind", true, "ask the resolver in /etc/resolv.conf (the router) for the published name, to detect DNS rebind protection")
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
	opts := engine.Options{Hostname: *hostname, Logger: log, CheckRebind: *checkRebind, ACMEDirectory: *acmeDirectory}
	if *acmeRoots != "" {
		pool, err := loadRoots(*acmeRoots)
		if err != nil {
			fmt.Fprintf(os.Stderr, "heimwolke-agent: %v\n", err)
			os.Exit(2)
		}
		opts.ACMERoots = pool
	}
	if *localNames != "" {
		opts.LocalNames = strings.Split(*localNames, ",")
	}
	opts.DNSResolvers = splitList(*dnsResolvers)
	for i, server := range splitList(*ipSources) {
		if i == 0 {
			opts.IPv4Sources = append(opts.IPv4Sources, netaddr.OpenDNS(server))
		} else {
			opts.IPv4Sources = append(opts.IPv4Sources, netaddr.GoogleDNS(server))
		}
	}
	if err := run(*socketPath, *stateDir, *tlsDir, opts, log); err != nil {
		log.Error("agent stopped", "err", err)
		os.Exit(1)
	}
}

// loadRoots reads the PEM certificates in path into a pool.
func loadRoots(path string) (*x509.CertPool, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading --acme-roots: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(data) {
		return nil, fmt.Errorf("--acme-roots %s contains no PEM certificate; pass the CA's root certificate file", path)
	}
	return pool, nil
}

func splitList(s string) []string {
	var out []string
	for _, part := range strings.Split(s, ",") {
		if part = strings.TrimSpace(part); part != "" {
			out = append(out, part)
		}
	}
	return out
}

// run serves the control API and runs the jobs until SIGTERM or an
// interrupt arrives, then stops the jobs, which removes the router's port
// mappings.
func run(socketPath, stateDir, tlsDir string, opts engine.Options, log *slog.Logger) error {
	log.Info("agent starting", "version", version.Version, "pid", os.Getpid(), "control_socket", socketPath, "state_dir", stateDir, "tls_dir", tlsDir)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	store, err := tlsstore.Open(tlsDir)
	if err != nil {
		return err
	}
	opts.TLS = store
	jobs, err := engine.New(ctx, opts)
	if err != nil {
		return err
	}
	defer jobs.Stop()
	agent, err := controlapi.New(controlapi.Options{StateDir: stateDir, Version: version.Version, Logger: log, Jobs: jobs})
	if err != nil {
		return err
	}
	if err := agent.Serve(ctx, socketPath); err != nil {
		return err
	}
	log.Info("agent stopped")
	return nil
}
