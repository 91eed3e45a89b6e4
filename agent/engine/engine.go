// Package engine runs the agent's jobs for the household's settings: the
// certificates (ACME or the local certificate authority), the dynamic DNS
// loop and the router's port mappings. Each new set of settings stops the
// running jobs and starts the ones that the settings ask for, and Fill
// reports their state in the control API's status.
package engine

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/libdns/libdns"

	"github.com/heimwolke/heimwolke/agent/certs"
	"github.com/heimwolke/heimwolke/agent/certs/localca"
	"github.com/heimwolke/heimwolke/agent/ddns"
	"github.com/heimwolke/heimwolke/agent/netaddr"
	"github.com/heimwolke/heimwolke/agent/portmap"
	"github.com/heimwolke/heimwolke/agent/rebind"
	"github.com/heimwolke/heimwolke/packages/control"
	"github.com/heimwolke/heimwolke/packages/dnsprovider/desec"
	"github.com/heimwolke/heimwolke/packages/dnsprovider/dyndns2"
	"github.com/heimwolke/heimwolke/packages/dnsprovider/hetzner"
	"github.com/heimwolke/heimwolke/packages/dnsprovider/rfc2136"
	"github.com/heimwolke/heimwolke/packages/tlsstore"
)

// localWarning is how long before its end a local certificate is flagged.
const localWarning = 3 * 24 * time.Hour

// Options configures an Engine.
type Options struct {
	// TLS is the store that certificates go into and heimwolke serves
	// from. Required.
	TLS *tlsstore.Store

	// Hostname is the box's LAN name without ".local", such as
	// "heimwolke". Empty means "heimwolke".
	Hostname string

	// LocalNames are further DNS names of the local certificate, such as
	// "localhost" when the programs run on a PC.
	LocalNames []string

	// IPv4Sources are the outside sources of the public IPv4 address
	// (DNS or HTTP). The router counts as a source too when port mapping
	// is on. Nil means the router only; the box passes public resolvers.
	IPv4Sources []netaddr.IPv4Source

	// ACMERoots verifies the ACME server's HTTPS certificate. Nil means
	// the system roots.
	ACMERoots *x509.CertPool

	// ACMEDirectory replaces the settings' ACME directory URL, so that a
	// box under test can use a local CA such as Pebble. Empty means the
	// settings' URL.
	ACMEDirectory string

	// DNSResolvers (host:port) find zones and check challenge records for
	// ACME DNS-01. Empty means the system's resolvers.
	DNSResolvers []string

	// CheckRebind turns on the DNS rebind check, which queries the resolver
	// in /etc/resolv.conf (on the box: the router) for the published name.
	// It is off by default, so that tests query no outside resolver.
	CheckRebind bool

	// Ports overrides the ports that the router maps, for tests. Nil means
	// the ports of the enabled services.
	Ports []uint16

	// Logger receives the engine's and its jobs' logs. Nil means
	// slog.Default().
	Logger *slog.Logger
}

// Engine runs the jobs of the current settings. Its methods are safe for
// concurrent use.
type Engine struct {
	opts Options
	log  *slog.Logger
	base context.Context

	mu       sync.Mutex
	settings *control.Settings
	stop     context.CancelFunc
	wg       *sync.WaitGroup
	prev     *sync.WaitGroup // the jobs of the settings before
	certs    *certs.Manager
	ddns     *ddns.Updater
	mapper   *portmap.Mapper
	hostname string // the published DNS name, for the status
	jobErr   error  // the failure of a job to start, for the status

	// The records that heimwolke's services need, and their state.
	desired      []libdns.Record
	desiredZone  string
	records      chan struct{} // wakes the records job; nil without a domain
	recordsState []control.RecordStatus
	publishErr   string
	checkErr     string

	// rebind is the last DNS rebind check of the published addresses.
	rebind *rebind.Result
}

// New returns an engine whose jobs run until ctx ends. It starts nothing
// before Apply.
func New(ctx context.Context, opts Options) (*Engine, error) {
	if opts.TLS == nil {
		return nil, errors.New("engine: Options.TLS is required")
	}
	if opts.Hostname == "" {
		opts.Hostname = "heimwolke"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	return &Engine{opts: opts, log: opts.Logger, base: ctx}, nil
}

// Apply stops the running jobs and starts the jobs that s turns on. A nil s
// means no settings yet: only the local certificate is made, so that the
// box serves HTTPS in the LAN from the start. A job that cannot start is
// logged and reported in the status; the others run anyway.
func (e *Engine) Apply(s *control.Settings) {
	e.mu.Lock()
	defer e.mu.Unlock()
	// The old jobs finish in the background (the port mapper removes its
	// mappings), so that the control request that brought s returns at
	// once. The new jobs start when the old ones are gone.
	if e.stop != nil {
		e.stop()
	}
	e.prev = e.wg

	ctx, cancel := context.WithCancel(e.base)
	e.stop, e.wg, e.settings = cancel, &sync.WaitGroup{}, s
	e.certs, e.ddns, e.mapper, e.hostname, e.jobErr = nil, nil, nil, "", nil
	e.records, e.recordsState, e.publishErr, e.checkErr, e.rebind = nil, nil, "", "", nil

	var errs []error
	// Without a domain the box serves the home network only, so the
	// router's ports stay closed until a domain is set, as the wizard's
	// router step tells the household.
	if s != nil && s.Router.PortMapping && s.Domain != "" {
		e.mapper = portmap.New(portmap.Config{Ports: e.ports(s), Logger: e.log.With("job", "portmap")})
		e.start(ctx, "portmap", e.mapper.Run)
	}
	provider, providerErr := dnsProvider(s)
	if providerErr != nil {
		errs = append(errs, providerErr)
	}
	if s != nil && provider.setter != nil {
		if err := e.startDDNS(ctx, s, provider); err != nil {
			errs = append(errs, err)
		}
	}
	if err := e.startCerts(ctx, s, provider); err != nil {
		errs = append(errs, err)
	}
	if s != nil && s.Domain != "" {
		wake := make(chan struct{}, 1)
		e.records = wake
		e.start(ctx, "records", func(ctx context.Context) error { return e.runRecords(ctx, provider, wake) })
	}
	e.jobErr = errors.Join(errs...)
	if e.jobErr != nil {
		e.log.Error("some agent jobs did not start", "err", e.jobErr)
	}
}

// Stop stops the running jobs and waits for them, so that the router's
// port mappings are removed before the agent exits.
func (e *Engine) Stop() {
	// The jobs take the lock to report their state, so wait without it.
	e.mu.Lock()
	stop, wg := e.stop, e.wg
	e.stop = nil
	e.mu.Unlock()
	if stop == nil {
		return
	}
	stop()
	wg.Wait()
}

func (e *Engine) start(ctx context.Context, job string, run func(context.Context) error) {
	prev := e.prev
	e.wg.Add(1)
	go func() {
		defer e.wg.Done()
		if prev != nil {
			prev.Wait()
		}
		if err := run(ctx); err != nil && ctx.Err() == nil {
			e.log.Error("agent job stopped", "job", job, "err", err)
		}
	}()
}

// ports returns the TCP ports that the enabled services need.
func (e *Engine) ports(s *control.Settings) []uint16 {
	if e.opts.Ports != nil {
		return e.opts.Ports
	}
	var ports []uint16
	for _, p := range s.Services.Ports() {
		ports = append(ports, uint16(p.Number))
	}
	return ports
}

// provider is the DNS provider of the settings: setter publishes A and
// AAAA records, and acme, when the provider can set any TXT record, solves
// DNS-01 challenges.
type provider struct {
	name   string
	zone   string
	setter libdns.RecordSetter
	acme   certmagic.DNSProvider
	// server is the RFC 2136 server, which is authoritative for the zone.
	server string
}

// dnsProvider builds the provider of s.DNS; the zero provider when there is
// none.
func dnsProvider(s *control.Settings) (provider, error) {
	if s == nil || s.DNS.Provider == "" {
		return provider{}, nil
	}
	d := s.DNS
	switch d.Provider {
	case control.DNSRFC2136:
		if d.RFC2136 == nil {
			return provider{}, errors.New("dns: provider rfc2136 without server settings: run the setup's domain step again")
		}
		p := &rfc2136.Provider{Server: d.RFC2136.Server, KeyName: d.RFC2136.KeyName, KeyAlgorithm: d.RFC2136.Algorithm, Secret: d.RFC2136.Secret}
		return provider{name: d.Provider, zone: d.RFC2136.Zone, setter: p, acme: p, server: d.RFC2136.Server}, nil
	case control.DNSHetzner:
		p := &hetzner.Provider{Token: d.Token}
		return provider{name: d.Provider, zone: s.Domain, setter: p, acme: p}, nil
	case control.DNSDeSEC:
		// The dynDNS endpoint updates A and AAAA; the REST API with the
		// same token sets the TXT records of DNS-01 challenges.
		return provider{
			name:   d.Provider,
			zone:   d.Hostname,
			setter: &dyndns2.Provider{Endpoint: dyndns2.DeSECEndpoint, Username: d.Hostname, Password: d.Token},
			acme:   &desec.Provider{Token: d.Token},
		}, nil
	case control.DNSDynDNS2:
		if d.DynDNS2 == nil {
			return provider{}, errors.New("dns: provider dyndns2 without an account: run the setup's domain step again")
		}
		p := &dyndns2.Provider{Endpoint: d.DynDNS2.UpdateURL, Username: d.DynDNS2.Username, Password: d.DynDNS2.Password}
		return provider{name: d.Provider, zone: d.Hostname, setter: p}, nil
	}
	return provider{}, fmt.Errorf("dns: unknown provider %q: choose hetzner, rfc2136, desec or dyndns2 in the setup's domain step", d.Provider)
}

// serviceNames returns the host names under domain that the enabled
// services use, besides domain itself.
func serviceNames(s *control.Settings) []string {
	var names []string
	if s.Services.Mail {
		names = append(names, "mail", "autoconfig", "autodiscover", "mta-sts")
	}
	if s.Services.Chat {
		names = append(names, "upload", "conference")
	}
	return names
}

func (e *Engine) startDDNS(ctx context.Context, s *control.Settings, p provider) error {
	host := strings.TrimSuffix(s.DNS.Hostname, ".")
	zone := strings.TrimSuffix(p.zone, ".")
	names := []string{host + "."}
	// Providers with an API publish the service names too; a dynDNS
	// account updates its one host name.
	if p.acme != nil && p.name != control.DNSDeSEC {
		for _, n := range serviceNames(s) {
			names = append(names, n+"."+host+".")
		}
	}

	cfg := ddns.Config{
		Zone:         zone + ".",
		Names:        names,
		Provider:     p.setter,
		ProviderName: p.name,
		IPv6:         &netaddr.IPv6Finder{},
		Logger:       e.log.With("job", "ddns"),
	}
	if e.mapper != nil || len(e.opts.IPv4Sources) > 0 {
		finder := &netaddr.IPv4Finder{Sources: e.opts.IPv4Sources, Logger: e.log.With("job", "ipv4")}
		if e.mapper != nil {
			// The router's WAN address also distinguishes CGNAT from DS-Lite.
			finder.Router = e.mapper
		}
		cfg.IPv4 = finder
	}
	if p.server != "" {
		cfg.Verifier = &ddns.AuthoritativeVerifier{Servers: []string{p.server}}
	} else {
		cfg.Verifier = &zoneVerifier{zone: zone + "."}
	}
	if changes, err := netaddr.WatchAddrs(ctx, e.log); err == nil {
		cfg.Changes = changes
	} else {
		e.log.Warn("not watching interface addresses; checking on a timer only", "err", err)
	}
	u, err := ddns.New(cfg)
	if err != nil {
		return fmt.Errorf("dynamic DNS: %w", err)
	}
	e.ddns, e.hostname = u, host
	e.start(ctx, "ddns", u.Run)
	if e.opts.CheckRebind {
		e.start(ctx, "rebind", func(ctx context.Context) error { return e.runRebind(ctx, u, host) })
	}
	return nil
}

// rebindInterval is how often the LAN's resolver is asked for the
// published name; a change of the published addresses triggers a check
// sooner.
const rebindInterval = 30 * time.Minute

// runRebind queries the LAN's resolver for the name that the dynamic DNS
// job publishes, as the household's devices do, and keeps the result for
// the status, because a router's DNS rebind protection may drop the reply.
func (e *Engine) runRebind(ctx context.Context, u *ddns.Updater, host string) error {
	var last []netip.Addr
	lastCheck := time.Time{}
	for {
		st := u.State()
		var published []netip.Addr
		for _, r := range st.Records {
			if strings.TrimSuffix(r.Name, ".") == host && r.Value.IsValid() && !r.Verified.IsZero() {
				published = append(published, r.Value)
			}
		}
		changed := !slices.Equal(published, last)
		if len(published) > 0 && (changed || time.Since(lastCheck) > rebindInterval) {
			res, err := rebind.Check(ctx, rebind.Config{Name: host, Published: published, LAN: lanNetipAddrs()})
			lastCheck, last = time.Now(), published
			if err != nil {
				e.log.Warn("checking DNS rebind protection", "name", host, "err", err)
			} else {
				if res.State != rebind.OK {
					e.log.Warn("LAN resolver does not return the published name", "name", host, "state", res.State, "resolver", res.Resolver.String())
				}
				e.mu.Lock()
				e.rebind = &res
				e.mu.Unlock()
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(30 * time.Second):
		}
	}
}

// lanNetipAddrs returns the box's private addresses.
func lanNetipAddrs() []netip.Addr {
	var out []netip.Addr
	for _, ip := range lanAddresses() {
		if a, ok := netip.AddrFromSlice(ip); ok && !a.IsLoopback() {
			out = append(out, a.Unmap())
		}
	}
	return out
}

func (e *Engine) startCerts(ctx context.Context, s *control.Settings, p provider) error {
	cfg := certs.Config{
		Store:        e.opts.TLS,
		TrustedRoots: e.opts.ACMERoots,
		DNSResolvers: e.opts.DNSResolvers,
		Logger:       e.log.With("job", "certs"),
		OnCertificate: func(ev certs.Event) {
			e.log.Info("certificate written", "certificate", ev.Certificate, "names", ev.Names, "not_after", ev.NotAfter)
		},
	}
	if s != nil && s.Domain != "" {
		domain := strings.TrimSuffix(s.Domain, ".")
		cfg.Email, cfg.DirectoryURL = s.ACME.Email, s.ACME.DirectoryURL
		if e.opts.ACMEDirectory != "" {
			cfg.DirectoryURL = e.opts.ACMEDirectory
		}
		if p.acme != nil {
			// DNS-01 can prove a wildcard, which covers every service name.
			cfg.DNSProvider = p.acme
			cfg.Names = []string{domain, "*." + domain}
		} else {
			cfg.Names = []string{domain}
			for _, n := range serviceNames(s) {
				cfg.Names = append(cfg.Names, n+"."+domain)
			}
		}
	} else {
		dir, err := e.opts.TLS.PrivateDir("localca")
		if err != nil {
			return fmt.Errorf("local certificate authority: %w", err)
		}
		local := e.opts.Hostname + ".local"
		ca, err := localca.Open(dir, e.opts.Hostname, append([]string{local}, e.opts.LocalNames...))
		if err != nil {
			return fmt.Errorf("local certificate authority: %w", err)
		}
		cfg.LocalCA = ca
		cfg.LocalNames = append([]string{local}, e.opts.LocalNames...)
		cfg.LocalIPs = lanAddresses()
	}
	m, err := certs.New(cfg)
	if err != nil {
		return fmt.Errorf("certificates: %w", err)
	}
	e.certs = m
	e.start(ctx, "certs", m.Run)
	return nil
}

// lanAddresses returns the box's loopback and private addresses, which the
// local certificate covers so that https://192.168.178.20/ works too.
func lanAddresses() []net.IP {
	ips := []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback}
	addrs, err := netaddr.ListAddrs()
	if err != nil {
		return ips
	}
	for _, a := range addrs {
		if a.Addr.IsPrivate() {
			ips = append(ips, net.IP(a.Addr.AsSlice()))
		}
	}
	return ips
}

// zoneVerifier checks records at the zone's authoritative servers, which
// it looks up on first use rather than when the settings arrive, so that a
// slow resolver does not hold up the control request.
type zoneVerifier struct {
	zone string

	mu sync.Mutex
	v  *ddns.AuthoritativeVerifier
}

func (z *zoneVerifier) Verify(ctx context.Context, name, rrtype string, want netip.Addr) error {
	z.mu.Lock()
	if z.v == nil {
		servers, err := ddns.ZoneServers(ctx, z.zone)
		if err != nil {
			z.mu.Unlock()
			return fmt.Errorf("finding the name servers of %s: %w", z.zone, err)
		}
		z.v = &ddns.AuthoritativeVerifier{Servers: servers}
	}
	v := z.v
	z.mu.Unlock()
	return v.Verify(ctx, name, rrtype, want)
}

// Fill adds the jobs' state to st.
func (e *Engine) Fill(st *control.Status) {
	e.mu.Lock()
	cm, u, m, host, jobErr := e.certs, e.ddns, e.mapper, e.hostname, e.jobErr
	services := append([]control.RecordStatus(nil), e.recordsState...)
	recordsErr := e.publishErr
	if recordsErr == "" {
		recordsErr = e.checkErr
	}
	domain := ""
	if e.settings != nil {
		domain = e.settings.Domain
	}
	rebindResult := e.rebind
	e.mu.Unlock()

	if cm != nil {
		st.Certificate = certificateStatus(cm.State())
	}
	if u != nil {
		st.DNS, st.Network = dnsStatus(u.State(), host)
		if rebindResult != nil {
			rebindResult.Fill(st.Network)
		}
	}
	if len(services) > 0 || recordsErr != "" {
		if st.DNS == nil {
			st.DNS = &control.DNSStatus{Hostname: domain}
		}
		st.DNS.Records = append(st.DNS.Records, services...)
		if st.DNS.LastError == "" {
			st.DNS.LastError = recordsErr
		}
	}
	if jobErr != nil {
		if st.DNS == nil {
			st.DNS = &control.DNSStatus{}
		}
		st.DNS.LastError = jobErr.Error()
	}
	if m != nil {
		st.Ports = portsStatus(m.State())
	}
}

func certificateStatus(states []certs.NameState) *control.CertificateStatus {
	if len(states) == 0 {
		return nil
	}
	cs := &control.CertificateStatus{}
	for _, ns := range states {
		cs.Names = append(cs.Names, ns.Name)
		if cs.NotAfter.IsZero() || (!ns.NotAfter.IsZero() && ns.NotAfter.Before(cs.NotAfter)) {
			cs.NotAfter = ns.NotAfter
		}
		if cs.LastError == "" {
			cs.LastError = ns.LastError
		}
		if cs.Issuer == "" {
			cs.Issuer = ns.Issuer
		}
		if cs.Challenge == "" {
			cs.Challenge = ns.Challenge
		}
		if cs.NextAttempt.IsZero() || (!ns.NextAttempt.IsZero() && ns.NextAttempt.Before(cs.NextAttempt)) {
			cs.NextAttempt = ns.NextAttempt
		}
		local := ns.Certificate == certs.LocalCertificate
		cs.Local = cs.Local || local
		// Local certificates live 14 days and are renewed long before
		// they end, so they warn only in their last three days.
		warn := ns.ExpiryWarning
		if local && !ns.NotAfter.IsZero() {
			warn = time.Until(ns.NotAfter) < localWarning
		}
		cs.ExpiryWarning = cs.ExpiryWarning || warn
	}
	return cs
}

func dnsStatus(s ddns.State, host string) (*control.DNSStatus, *control.NetworkStatus) {
	ds := &control.DNSStatus{Provider: s.Provider, Hostname: host, LastUpdate: s.LastUpdate}
	if s.Failures > 0 {
		ds.LastError = s.LastError
	}
	if s.IPv4.IsValid() {
		ds.IPv4 = s.IPv4.String()
	}
	if s.IPv6.IsValid() {
		ds.IPv6 = s.IPv6.String()
	}
	for _, r := range s.Records {
		rs := control.RecordStatus{Name: strings.TrimSuffix(r.Name, "."), Type: r.Type, LastUpdate: r.Updated, LastError: r.Error}
		switch {
		case !r.Value.IsValid():
			rs.State = "missing"
		case r.Error != "":
			rs.State = "wrong"
		case !r.Verified.IsZero() || r.Updated.IsZero():
			// Verified, or found in place when the loop started.
			rs.State = "published"
		default:
			rs.State = "pending"
		}
		if r.Value.IsValid() {
			rs.Value = r.Value.String()
		}
		ds.Records = append(ds.Records, rs)
	}
	ns := &control.NetworkStatus{Class: string(s.IPv4Class), Disagreement: s.IPv4Disagreement, CheckedAt: s.LastCheck}
	if s.IPv4.IsValid() {
		ns.PublicIPv4 = s.IPv4.String()
	}
	if s.IPv6.IsValid() {
		ns.PublicIPv6 = s.IPv6.String()
	}
	return ds, ns
}

func portsStatus(s portmap.State) *control.PortsStatus {
	ps := &control.PortsStatus{}
	if len(s.Protocols) > 0 {
		ps.Router = string(s.Protocols[0])
		if s.Gateway.IsValid() {
			ps.Router += " " + s.Gateway.String()
		}
	}
	for _, p := range s.Ports {
		ps.Ports = append(ps.Ports, control.PortStatus{
			Port: p.Port, Mapped: p.Mapped, Protocol: string(p.Protocol), Expires: p.Expires,
			Reason: string(p.Reason), Error: p.Error,
		})
	}
	return ps
}
