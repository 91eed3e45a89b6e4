// Command heimwolke serves everything the household uses from one process:
// the setup wizard and the web interface on port 80 and HTTPS, the website,
// WebDAV, CalDAV and CardDAV on HTTPS, incoming mail and submission over
// SMTP, and IMAP. Certificates come from the agent's TLS store, and the mail
// settings from the agent's control socket.
package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"sync"
	"syscall"
	"time"
	_ "time/tzdata" // the box has no zoneinfo files

	"github.com/heimwolke/heimwolke/appliance/mdns"
	"github.com/heimwolke/heimwolke/appliance/web"
	"github.com/heimwolke/heimwolke/appliance/website"
	"github.com/heimwolke/heimwolke/appliance/webui"
	"github.com/heimwolke/heimwolke/packages/accounts"
	"github.com/heimwolke/heimwolke/packages/authlimit"
	"github.com/heimwolke/heimwolke/packages/control"
	"github.com/heimwolke/heimwolke/packages/logging"
	"github.com/heimwolke/heimwolke/packages/tlsstore"
	"github.com/heimwolke/heimwolke/packages/version"
)

func main() {
	showVersion := flag.Bool("version", false, "print the version and exit")
	httpAddr := flag.String("http", ":80", "address for the web interface and health endpoint (host:port)")
	httpsAddr := flag.String("https", ":443", "address for HTTPS: the web interface, the website and the DAV services (host:port); empty: off")
	smtpAddr := flag.String("smtp", ":25", "address for incoming mail (SMTP with STARTTLS); empty: off")
	submissionAddr := flag.String("submission", ":587", "address for mail submission with STARTTLS; empty: off")
	submissionsAddr := flag.String("submissions", ":465", "address for mail submission with implicit TLS; empty: off")
	imapsAddr := flag.String("imaps", ":993", "address for IMAP with implicit TLS; empty: off")
	tlsDir := flag.String("tls-dir", "", "folder of the certificates that heimwolke-agent writes (default tls in the -data folder, /perm/heimwolke/tls on the box)")
	dataDir := flag.String("data", "/perm/heimwolke", "folder for the box's persistent data")
	wwwDir := flag.String("www", "", "folder of the household's website, served on / once the setup is complete (default www in the -data folder, /perm/heimwolke/www on the box)")
	dbPath := flag.String("db", "", "SQLite database with the accounts and settings, created if missing (default heimwolke.db in the -data folder, /perm/heimwolke/heimwolke.db on the box)")
	logConsole := flag.Bool("log-console", false, "copy log lines to /dev/console (the box's serial console)")
	debug := flag.Bool("debug", false, "log every request")
	mdnsName := flag.String("mdns", "", "answer multicast DNS for NAME.local on the LAN (the box passes heimwolke); empty: off")
	setupCodeFile := flag.String("setup-code-file", "", "file with the setup code that the wizard asks for (heimwolke-init copies it from the card's boot partition); empty or missing: no code")
	agentSocket := flag.String("agent-socket", control.AgentSocket, "Unix socket path of heimwolke-agent's control API")
	timezone := flag.String("timezone", "Europe/Berlin", "IANA time zone of the times that the web interface and mail notices show")
	flag.Parse()
	if flag.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "heimwolke: unexpected argument %q; run heimwolke -h for the options\n", flag.Arg(0))
		os.Exit(2)
	}

	if *showVersion {
		fmt.Println(version.Version)
		return
	}

	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := logging.Setup("heimwolke", level, *logConsole)
	// The box has no /etc/localtime, so the zone comes from the embedded
	// time/tzdata and the flag.
	if loc, err := time.LoadLocation(*timezone); err != nil {
		fmt.Fprintf(os.Stderr, "heimwolke: --timezone %q: %v; use an IANA name such as Europe/Berlin\n", *timezone, err)
		os.Exit(2)
	} else {
		time.Local = loc
	}
	// The admin dashboard shows the last lines of this log.
	logs := logging.NewRing(200)
	log = slog.New(logs.Handler(log.Handler()))
	slog.SetDefault(log)
	if *dbPath == "" {
		// Derived from -data, so that "make run" with a local -data folder
		// keeps its database there too.
		*dbPath = filepath.Join(*dataDir, "heimwolke.db")
	}
	if *wwwDir == "" {
		*wwwDir = filepath.Join(*dataDir, "www")
	}
	if *tlsDir == "" {
		*tlsDir = filepath.Join(*dataDir, "tls")
	}
	uiOpts := webui.Options{
		AgentSocket:   *agentSocket,
		DataDir:       *dataDir,
		Logs:          logs,
		SetupCodeFile: *setupCodeFile,
		// The agent's local CA keeps its root here (agent/certs/localca).
		LocalRootFile: filepath.Join(*tlsDir, "localca", "root.pem"),
	}
	addrs := listenAddrs{http: *httpAddr, https: *httpsAddr, mail: mailAddrs{
		smtp: *smtpAddr, submission: *submissionAddr, submissions: *submissionsAddr, imaps: *imapsAddr,
	}}
	if err := run(addrs, *dataDir, *dbPath, *wwwDir, *tlsDir, *mdnsName, uiOpts, log); err != nil {
		log.Error("heimwolke stopped", "err", err)
		os.Exit(1)
	}
}

// run serves until SIGTERM or an interrupt. uiOpts holds the web
// interface's options other than the stores and the website, which run and
// openUI add.
func run(addrs listenAddrs, dataDir, dbPath, wwwDir, tlsDir, mdnsName string, uiOpts webui.Options, log *slog.Logger) error {
	log.Info("heimwolke starting", "version", version.Version, "http", addrs.http, "https", addrs.https, "data", dataDir, "db", dbPath, "www", wwwDir, "tls", tlsDir)
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		// Not fatal here: openUI fails too if the database is in this
		// folder, and the health report leaves out the storage figures.
		log.Error("creating data folder", "path", dataDir, "err", err)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	defer stop()

	certs, err := tlsstore.Open(tlsDir)
	if err != nil {
		return err
	}
	trusted := &publicCertificate{store: certs}
	site, err := website.New(website.Options{Dir: wwwDir, Logger: log, HTTPSHost: trusted.covers})
	if err != nil {
		return err
	}
	uiOpts.Website = site
	uiOpts.ServicesReady = func() bool { return servicesReady(certs, addrs) }

	ui, setupComplete, svc, closeStores, err := openUI(ctx, dbPath, dataDir, wwwDir, uiOpts, log)
	if err != nil {
		return err
	}
	defer closeStores()

	handler := web.New(web.Options{
		Version:       version.Version,
		DataDir:       dataDir,
		Logger:        log,
		UI:            ui,
		Website:       site,
		SetupComplete: setupComplete,
		HTTPSHost:     trusted.covers,
		HTTPSPort:     portOf(addrs.https),
	})
	// Port 80 serves the agent's ACME HTTP-01 challenges before anything
	// else.
	srv := web.NewServer(addrs.http, certs.HTTPChallengeHandler(handler), log)
	ln, err := net.Listen("tcp", addrs.http)
	if err != nil {
		return fmt.Errorf("listening for HTTP on %q: %w", addrs.http, err)
	}
	errc := make(chan error, 2)
	go func() { errc <- srv.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String(), "protocol", "http")

	if err := svc.mail.serve(ctx, addrs.mail, certs.TLSConfig(), control.NewClient(uiOpts.AgentSocket)); err != nil {
		return err
	}
	svc.clientSetup = svc.mail.serveClientSetup

	servers := []*http.Server{srv}
	if addrs.https != "" {
		tlsSrv := newHTTPSServer(addrs.https, svc.httpsHandler(handler), certs, log)
		tlsLn, err := net.Listen("tcp", addrs.https)
		if err != nil {
			return fmt.Errorf("listening for HTTPS on %q: %w", addrs.https, err)
		}
		go func() { errc <- tlsSrv.ServeTLS(tlsLn, "", "") }()
		log.Info("listening", "addr", tlsLn.Addr().String(), "protocol", "https")
		servers = append(servers, tlsSrv)
	}

	if mdnsName != "" {
		go func() {
			err := mdns.Serve(ctx, mdns.Options{Hostname: mdnsName, Logger: log})
			if err != nil && ctx.Err() == nil {
				// The box stays reachable by its address; only the name is lost.
				log.Error("multicast DNS stopped", "name", mdnsName+".local", "err", err)
			}
		}()
	}

	select {
	case err := <-errc:
		return fmt.Errorf("serving: %w", err)
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var errs []error
	for _, s := range servers {
		if err := s.Shutdown(shutdownCtx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// servicesReady reports whether the HTTPS and IMAPS listeners are on and
// the store has a certificate for them to serve, which the wizard's
// progress page shows as the services' state. SMTP follows within 15
// seconds of the settings, when heimwolke reads them next.
func servicesReady(certs *tlsstore.Store, addrs listenAddrs) bool {
	if addrs.https == "" {
		return false
	}
	_, err := certs.GetCertificate(&tls.ClientHelloInfo{})
	return err == nil
}

// portOf returns the port of a listen address such as ":443", or "" when
// addr has none.
func portOf(addr string) string {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return ""
	}
	return port
}

// listenAddrs are the addresses heimwolke listens on; empty turns a
// protocol off.
type listenAddrs struct {
	http, https string
	mail        mailAddrs
}

// newHTTPSServer returns the server for port 443. Its certificates come
// from the store, which picks up a renewed certificate within a second.
// It has no overall read or write timeout, because a DAV client may upload
// or download a file of several gigabytes. The header and idle timeouts
// still end idle connections.
func newHTTPSServer(addr string, handler http.Handler, certs *tlsstore.Store, log *slog.Logger) *http.Server {
	srv := web.NewServer(addr, handler, log)
	srv.ReadTimeout, srv.WriteTimeout = 0, 0
	srv.TLSConfig = certs.TLSConfig()
	return srv
}

// acmeCertificate is the store name of the certificate from the ACME CA,
// which agent/certs writes.
const acmeCertificate = "acme"

// publicCertificate is the certificate from the ACME CA in the store, which
// browsers accept without the household installing a root. It is read at
// most every ten seconds, because the front door checks it on every plain
// HTTP request.
type publicCertificate struct {
	store *tlsstore.Store

	mu      sync.Mutex
	checked time.Time
	leaf    *x509.Certificate // nil when there is no valid one
}

// covers reports whether the certificate is valid now and names host.
func (p *publicCertificate) covers(host string) bool {
	leaf := p.current()
	return leaf != nil && time.Now().Before(leaf.NotAfter) && leaf.VerifyHostname(host) == nil
}

func (p *publicCertificate) current() *x509.Certificate {
	p.mu.Lock()
	defer p.mu.Unlock()
	if time.Since(p.checked) < 10*time.Second {
		return p.leaf
	}
	p.checked = time.Now()
	p.leaf = nil
	if cert, err := p.store.Certificate(acmeCertificate); err == nil {
		p.leaf = cert.Leaf
	}
	return p.leaf
}

// openUI opens the database at dbPath and returns the web interface on it
// with uiOpts, the function that reports whether the setup is complete, and
// the function that closes the database. One login throttle serves the
// accounts and the interface, so both count the same addresses as LAN.
func openUI(ctx context.Context, dbPath, dataDir, wwwDir string, uiOpts webui.Options, log *slog.Logger) (http.Handler, func() bool, *services, func(), error) {
	if err := os.MkdirAll(filepath.Dir(dbPath), 0o700); err != nil {
		return nil, nil, nil, nil, fmt.Errorf("creating database folder: %w", err)
	}
	limiter := authlimit.New(authlimit.Config{})
	store, err := accounts.Open(ctx, dbPath, accounts.Options{Logger: log, Limiter: limiter})
	if err != nil {
		return nil, nil, nil, nil, fmt.Errorf("opening database: %w", err)
	}
	setup, err := webui.OpenSetupState(ctx, dbPath)
	if err != nil {
		store.Close()
		return nil, nil, nil, nil, fmt.Errorf("opening database: %w", err)
	}
	svc, err := openServices(ctx, dbPath, dataDir, wwwDir, store, log)
	if err != nil {
		setup.Close()
		store.Close()
		return nil, nil, nil, nil, err
	}
	closeStores := func() {
		if err := svc.Close(); err != nil {
			log.Error("closing services database", "err", err)
		}
		if err := setup.Close(); err != nil {
			log.Error("closing setup state", "err", err)
		}
		if err := store.Close(); err != nil {
			log.Error("closing accounts database", "err", err)
		}
	}
	uiOpts.Files = svc.files
	uiOpts.Mail = svc.mail.webUI()
	uiOpts.DeleteUserData = svc.deleteUserData

	uiOpts.Accounts = store
	uiOpts.Setup = setup
	uiOpts.Limiter = limiter
	uiOpts.Logger = log
	uiOpts.Version = version.Version
	ui, err := webui.New(uiOpts)
	if err != nil {
		closeStores()
		return nil, nil, nil, nil, err
	}
	log.Info("database open", "path", dbPath, "setup_complete", setup.Complete())
	return ui, setup.Complete, svc, closeStores, nil
}
