package main

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/libdns/libdns"

	"github.com/heimwolke/heimwolke/appliance/dav"
	"github.com/heimwolke/heimwolke/appliance/mail/aliases"
	"github.com/heimwolke/heimwolke/appliance/mail/auth"
	"github.com/heimwolke/heimwolke/appliance/mail/imap"
	"github.com/heimwolke/heimwolke/appliance/mail/queue"
	"github.com/heimwolke/heimwolke/appliance/mail/records"
	"github.com/heimwolke/heimwolke/appliance/mail/smtp"
	"github.com/heimwolke/heimwolke/appliance/mail/store"
	"github.com/heimwolke/heimwolke/appliance/mailconfig"
	"github.com/heimwolke/heimwolke/appliance/notice"
	"github.com/heimwolke/heimwolke/appliance/webui"
	"github.com/heimwolke/heimwolke/packages/accounts"
	"github.com/heimwolke/heimwolke/packages/control"
	"github.com/heimwolke/heimwolke/packages/dnsprovider/rrconv"
)

// mailAddrs are the mail ports; an empty address turns a port off.
type mailAddrs struct {
	smtp, submission, submissions, imaps string
}

// mailConfig is the part of the agent's settings that the mail servers use.
type mailConfig struct {
	domain    string
	smarthost *control.SmarthostSettings
}

// mail runs the household's mail: IMAP from the start, and SMTP with the
// outgoing queue once the agent's settings name a domain with mail on.
type mail struct {
	addrs    mailAddrs
	dir      string // the mail folder under the data folder
	db       *sql.DB
	accounts *accounts.Store
	store    *store.Store
	keys     *auth.Keys
	aliases  *aliases.Store
	tls      *tls.Config
	log      *slog.Logger
	// noticeLog is the notices' logger, which names its own service.
	noticeLog *slog.Logger

	mu        sync.Mutex
	current   mailConfig
	stop      func() // stops SMTP and the queue of current
	queue     *queue.Queue
	directory *aliases.Directory

	// clientSetup serves autoconfig, autodiscover and the MTA-STS policy
	// for the current domain; nil while mail is off.
	clientSetup atomic.Pointer[mailconfig.Handler]
	// sentRecords are the records last handed to the agent.
	sentRecords *control.ServiceRecords
}

// startMail opens the mail store and the DKIM keys under dataDir, serves
// IMAP, and then follows the agent's settings for SMTP.
// openMail opens the mail store, the DKIM keys and the aliases under
// dataDir; serve starts the servers.
func openMail(ctx context.Context, dataDir, dbPath string, db *sql.DB, accts *accounts.Store, log *slog.Logger) (*mail, error) {
	dir := filepath.Join(dataDir, "mail")
	st, err := store.Open(ctx, store.Options{Dir: filepath.Join(dir, "messages"), DatabasePath: dbPath, Logger: log,
		UserExists: accountExists(accts)})
	if err != nil {
		return nil, fmt.Errorf("opening the mail store: %w", err)
	}
	keys, err := auth.LoadOrCreateKeys(filepath.Join(dir, "dkim"))
	if err != nil {
		return nil, fmt.Errorf("loading the DKIM keys: %w", err)
	}
	al, err := aliases.Open(ctx, db)
	if err != nil {
		return nil, fmt.Errorf("opening the mail aliases: %w", err)
	}
	return &mail{dir: dir, db: db, accounts: accts, store: st, keys: keys, aliases: al, log: log.With("service", "mail"), noticeLog: log.With("service", "notice")}, nil
}

// accountExists returns the store's Options.UserExists: whether accts has
// a user with the login name.
func accountExists(accts *accounts.Store) func(ctx context.Context, login string) (bool, error) {
	return func(ctx context.Context, login string) (bool, error) {
		_, err := accts.UserByName(ctx, login)
		if errors.Is(err, accounts.ErrNotFound) {
			return false, nil
		}
		return err == nil, err
	}
}

// webUI returns the mail parts of the web interface: aliases and the
// queue of the current domain, and the members' mbox export.
func (m *mail) webUI() webui.MailServices {
	return webui.MailServices{Aliases: mailAliases{m}, Queue: mailQueue{m}, Export: m.store}
}

// serve starts IMAP at once, the certificate notices, and SMTP with the
// queue once the agent's settings turn mail on.
func (m *mail) serve(ctx context.Context, addrs mailAddrs, tlsConfig *tls.Config, agent *control.Client) error {
	// Mail clients speak no HTTP: no ALPN protocols.
	tlsConfig = tlsConfig.Clone()
	tlsConfig.NextProtos = nil
	m.addrs, m.tls = addrs, tlsConfig
	st, accts, db := m.store, m.accounts, m.db

	if addrs.imaps != "" {
		srv, err := imap.New(imap.Options{Store: st, Accounts: accts, TLSConfig: tlsConfig, Logger: m.log})
		if err != nil {
			return err
		}
		ln, err := net.Listen("tcp", addrs.imaps)
		if err != nil {
			return fmt.Errorf("listening for IMAP on %q: %w", addrs.imaps, err)
		}
		m.log.Info("listening", "addr", ln.Addr().String(), "protocol", "imaps")
		go func() {
			if err := srv.Serve(ln); err != nil && ctx.Err() == nil {
				m.log.Error("IMAP stopped", "err", err)
			}
		}()
		go func() {
			<-ctx.Done()
			srv.Close()
		}()
	}
	n, err := notice.New(notice.Options{Agent: agent, Users: accts, Deliverer: st, DB: db, Logger: m.noticeLog})
	if err != nil {
		return err
	}
	go n.Run(ctx)
	go m.follow(ctx, agent)
	return nil
}

// mailAliases is the web interface's view of the aliases: the domain's
// directory while mail runs, the stored lists always.
type mailAliases struct{ m *mail }

func (a mailAliases) directory() (*aliases.Directory, error) {
	a.m.mu.Lock()
	defer a.m.mu.Unlock()
	if a.m.directory == nil {
		return nil, errors.New("mail is not running yet: set a domain and turn mail on in the settings first")
	}
	return a.m.directory, nil
}

func (a mailAliases) Domains() []string {
	d, err := a.directory()
	if err != nil {
		return nil
	}
	return d.Domains()
}

func (a mailAliases) List(ctx context.Context) ([]aliases.Alias, error) { return a.m.aliases.List(ctx) }

func (a mailAliases) Remove(ctx context.Context, address string) error {
	return a.m.aliases.Remove(ctx, address)
}

func (a mailAliases) CatchAlls(ctx context.Context) ([]aliases.CatchAll, error) {
	return a.m.aliases.CatchAlls(ctx)
}

func (a mailAliases) ClearCatchAll(ctx context.Context, domain string) error {
	return a.m.aliases.ClearCatchAll(ctx, domain)
}

func (a mailAliases) Add(ctx context.Context, address, login string) error {
	d, err := a.directory()
	if err != nil {
		return err
	}
	return d.Add(ctx, address, login)
}

func (a mailAliases) SetCatchAll(ctx context.Context, domain, login string) error {
	d, err := a.directory()
	if err != nil {
		return err
	}
	return d.SetCatchAll(ctx, domain, login)
}

// mailQueue is the web interface's view of the current outgoing queue.
type mailQueue struct{ m *mail }

func (q mailQueue) Entries(ctx context.Context) ([]queue.Entry, error) {
	q.m.mu.Lock()
	cur := q.m.queue
	q.m.mu.Unlock()
	if cur == nil {
		return nil, nil
	}
	return cur.Entries(ctx)
}

// settingsInterval is the time between two reads of the agent's settings.
// A change of domain or relay reaches the mail servers within it.
const settingsInterval = 15 * time.Second

// follow reads the agent's settings now and every settingsInterval, and
// restarts SMTP and the queue when the mail part of them changed.
func (m *mail) follow(ctx context.Context, agent *control.Client) {
	ticker := time.NewTicker(settingsInterval)
	defer ticker.Stop()
	for {
		reqCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		s, err := agent.GetSettings(reqCtx)
		cancel()
		var cerr *control.Error
		switch {
		case errors.As(err, &cerr) && cerr.Code == control.CodeNoSettings:
			m.apply(ctx, mailConfig{})
		case err != nil:
			// The agent may be restarting; keep what runs.
			m.log.Debug("reading the agent's settings", "err", err)
		case s.Domain == "" || !s.Services.Mail:
			m.apply(ctx, mailConfig{})
		default:
			m.apply(ctx, mailConfig{domain: strings.TrimSuffix(s.Domain, "."), smarthost: s.Mail.Smarthost})
		}
		if err == nil && s.Domain != "" {
			m.sendRecords(ctx, agent, s)
		}
		select {
		case <-ctx.Done():
			m.apply(ctx, mailConfig{})
			return
		case <-ticker.C:
		}
	}
}

// apply makes the SMTP servers and the queue match cfg.
func (m *mail) apply(ctx context.Context, cfg mailConfig) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if reflect.DeepEqual(cfg, m.current) && (m.stop != nil || cfg.domain == "") {
		return
	}

	if m.stop != nil {
		m.stop()
		m.stop = nil
		m.queue, m.directory = nil, nil
		m.clientSetup.Store(nil)
	}
	m.current = cfg
	if cfg.domain == "" || ctx.Err() != nil {
		return
	}

	stop, err := m.startSMTP(ctx, cfg)
	if err != nil {
		m.log.Error("starting mail for the domain failed, retrying at the next settings check", "domain", cfg.domain, "err", err)
		m.current = mailConfig{}
		return
	}
	m.stop = stop

	setup, err := mailconfig.New(mailconfig.Options{
		Domain:       cfg.domain,
		MailHost:     "mail." + cfg.domain,
		MTASTSPolicy: func() (string, error) { return records.MTASTSPolicy(m.recordParams(cfg.domain)) },
		Logger:       m.log,
	})
	if err != nil {
		m.log.Error("mail client setup not served", "domain", cfg.domain, "err", err)
	}
	m.clientSetup.Store(setup)

	m.log.Info("mail started", "domain", cfg.domain, "relay", cfg.smarthost != nil)
}

// recordParams describes the domain's mail records.
func (m *mail) recordParams(domain string) records.Params {
	host := "mail." + domain
	return records.Params{
		Domain:        domain,
		MailHost:      host,
		DKIM:          m.keys.Records(),
		ReportAddress: "postmaster@" + domain,
		// The policy names only the mail host and the mode, so a hash of
		// both changes exactly when the policy does.
		MTASTSID: fmt.Sprintf("%x", sha256.Sum256([]byte("testing "+host)))[:16],
	}
}

// sendRecords hands the agent the DNS records of the enabled services:
// mail's records and the CalDAV/CardDAV discovery records. The agent
// publishes them through the DNS provider and marks each one in the
// admin UI; they are sent again only when they change.
func (m *mail) sendRecords(ctx context.Context, agent *control.Client, s control.Settings) {
	domain := strings.TrimSuffix(s.Domain, ".")
	zone := domain
	if s.DNS.RFC2136 != nil && s.DNS.RFC2136.Zone != "" {
		zone = strings.TrimSuffix(s.DNS.RFC2136.Zone, ".")
	}

	// Both builders name records relative to the domain, which may lie
	// below the zone.
	var recs []libdns.Record
	if s.Services.Mail {
		mailRecs, err := records.Records(m.recordParams(domain))
		if err != nil {
			m.log.Error("building the mail DNS records failed", "domain", domain, "err", err)
			return
		}
		recs = append(recs, mailRecs...)
	}
	if s.Services.CalendarContacts {
		recs = append(recs, dav.DNSRecords(domain+".", time.Hour)...)
	}

	batch := control.ServiceRecords{Zone: zone}
	for _, rec := range recs {
		rr := rec.RR()
		data, err := rrconv.Presentation(domain+".", rec)
		if err != nil {
			m.log.Error("encoding a DNS record failed", "name", rr.Name, "type", rr.Type, "err", err)
			continue
		}
		name := libdns.RelativeName(libdns.AbsoluteName(rr.Name, domain+"."), zone+".")
		batch.Records = append(batch.Records, control.ServiceRecord{
			Name: name, Type: rr.Type, Data: data, TTL: int(rr.TTL / time.Second),
		})
	}
	if len(batch.Records) == 0 || (m.sentRecords != nil && reflect.DeepEqual(*m.sentRecords, batch)) {
		return
	}

	reqCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := agent.PutRecords(reqCtx, batch); err != nil {
		m.log.Warn("handing the DNS records to the agent failed", "zone", zone, "err", err)
		return
	}
	m.sentRecords = &batch
	m.log.Info("DNS records handed to the agent", "zone", zone, "records", len(batch.Records))
}

// serveClientSetup serves autoconfig, autodiscover and MTA-STS requests
// for the mail domain, and reports false for every other request.
func (m *mail) serveClientSetup(w http.ResponseWriter, r *http.Request) bool {
	h := m.clientSetup.Load()
	if h == nil || !h.Match(r) {
		return false
	}
	h.ServeHTTP(w, r)
	return true
}

// startSMTP starts the queue and the SMTP listeners for cfg and returns the
// function that stops them.
func (m *mail) startSMTP(ctx context.Context, cfg mailConfig) (func(), error) {
	host := "mail." + cfg.domain
	ctx, cancel := context.WithCancel(ctx)
	q, err := queue.Open(ctx, queue.Options{
		Dir:       filepath.Join(m.dir, "queue"),
		DB:        m.db,
		Hostname:  host,
		Smarthost: cfg.smarthost,
		Signer:    m.keys,
		Local:     m.store,
		Language:  m.language,
		Logger:    m.log,
	})
	if err != nil {
		cancel()
		return nil, err
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := q.Run(ctx); err != nil && ctx.Err() == nil {
			m.log.Error("mail queue stopped", "err", err)
		}
	}()

	dir := m.aliases.Directory([]string{cfg.domain}, m.accounts)
	srv, err := smtp.New(smtp.Options{
		Hostname:  host,
		TLSConfig: m.tls,
		Directory: dir,
		Deliverer: m.store,
		SpoolDir:  filepath.Join(m.dir, "spool"),
		Outbox:    q,
		Passwords: m.accounts,
		Checker:   &auth.Checker{AuthServID: host, Logger: m.log},
		Logger:    m.log,
	})
	if err != nil {
		cancel()
		wg.Wait()
		return nil, err
	}
	m.queue, m.directory = q, dir
	var listeners []net.Listener
	closeAll := func() {
		for _, ln := range listeners {
			ln.Close()
		}
		srv.Close()
		cancel()
		wg.Wait()
	}
	for _, l := range []struct {
		addr string
		mode smtp.Mode
		name string
	}{
		{m.addrs.smtp, smtp.Inbound, "smtp"},
		{m.addrs.submission, smtp.Submission, "submission"},
		{m.addrs.submissions, smtp.SubmissionTLS, "submissions"},
	} {
		if l.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			closeAll()
			return nil, fmt.Errorf("listening for %s on %q: %w", l.name, l.addr, err)
		}
		listeners = append(listeners, ln)
		// smtp.Server.Serve logs the listening address itself.
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ln, l.mode); err != nil && ctx.Err() == nil {
				m.log.Error("SMTP listener stopped", "protocol", l.name, "err", err)
			}
		}()
	}
	return closeAll, nil
}

// language returns the language of a user's bounce messages.
func (m *mail) language(ctx context.Context, login string) string {
	u, err := m.accounts.UserByName(ctx, login)
	if err != nil {
		return string(accounts.LanguageEnglish)
	}
	return string(u.Language)
}
