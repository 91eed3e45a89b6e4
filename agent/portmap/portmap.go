// Package portmap opens the box's public TCP ports on the home router and
// keeps them open: UPnP IGD v1 and v2 (with IPv6 pinholes where the router
// offers WANIPv6FirewallControl), PCP (RFC 6887) and NAT-PMP (RFC 6886). It
// reports per port what worked, and why a port could not be mapped, so the
// admin UI can tell the household what to set on the router by hand.
package portmap

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// DefaultPorts are the box's public TCP ports: SMTP (25), HTTP (80), HTTPS
// (443), submission over TLS (465), submission (587), IMAPS (993), XMPP
// client (5222) and client over TLS (5223), XMPP server (5269).
var DefaultPorts = []uint16{25, 80, 443, 465, 587, 993, 5222, 5223, 5269}

// Protocol is a port mapping protocol.
type Protocol string

// The protocols that State reports, in the order the mapper tries them by
// default.
const (
	ProtocolUPnPIGD2 Protocol = "upnp-igd2"
	ProtocolUPnPIGD1 Protocol = "upnp-igd1"
	ProtocolPCP      Protocol = "pcp"
	ProtocolNATPMP   Protocol = "nat-pmp"
)

// ProtocolUPnP in Config.Protocols selects UPnP IGD of either version.
const ProtocolUPnP Protocol = "upnp"

// Reason is a stable code for why a port is not mapped, for the admin UI to
// turn into router instructions. The empty Reason means the port is mapped.
type Reason string

const (
	// ReasonPending: the mapper has not tried the port yet.
	ReasonPending Reason = "pending"
	// ReasonNoService: no UPnP IGD, PCP or NAT-PMP server responded on the
	// LAN. On a FRITZ!Box the per-device setting "Selbstständige
	// Portfreigaben erlauben" is off, or UPnP is off altogether.
	ReasonNoService Reason = "no_service"
	// ReasonNotAllowed: the router responded but does not let this device
	// open ports (UPnP error 606, PCP NOT_AUTHORIZED, NAT-PMP result 2).
	ReasonNotAllowed Reason = "not_allowed"
	// ReasonPortInUse: the external port is mapped to another device or
	// used by the router itself (UPnP error 718, PCP
	// CANNOT_PROVIDE_EXTERNAL, or NAT-PMP granting another port).
	ReasonPortInUse Reason = "port_in_use"
	// ReasonNoPublicIPv4: the router's own external address is private or
	// shared (DS-Lite, carrier-grade NAT). A mapping on it cannot be reached
	// from the internet, so the box needs the relay.
	ReasonNoPublicIPv4 Reason = "no_public_ipv4"
	// ReasonRouterError: the router responded with another error, or
	// stopped responding.
	ReasonRouterError Reason = "router_error"
)

// Config configures a Mapper. Zero fields take the documented defaults.
type Config struct {
	// Ports are the TCP ports to map, each external port to the same
	// internal port. Default: DefaultPorts.
	Ports []uint16
	// Protocols are the protocols to try, in order: ProtocolUPnP,
	// ProtocolPCP and ProtocolNATPMP. Default: all three in that order.
	Protocols []Protocol
	// Gateway is the router's LAN address for PCP and NAT-PMP. Default: the
	// IPv4 default gateway from /proc/net/route.
	Gateway netip.Addr
	// InternalV4 is the box's LAN address that the ports map to. Default:
	// the address the box uses to reach the router.
	InternalV4 netip.Addr
	// InternalV6 is the box's global IPv6 address to open pinholes for.
	// Default: the first global unicast address outside fc00::/7 on an
	// interface that is up. Pinholes need UPnP WANIPv6FirewallControl or
	// PCP on the router.
	InternalV6 netip.Addr
	// NoIPv6 turns off IPv6 pinholes.
	NoIPv6 bool
	// Lease is the lease the mapper requests. It renews a mapping when half
	// of the granted lease is over. Default: 1 hour.
	Lease time.Duration
	// RetryInterval is the wait before the mapper tries again ports that it
	// could not map, and searches the router again. Default: 5 minutes.
	RetryInterval time.Duration
	// RequestTimeout bounds each UPnP action and each PCP or NAT-PMP
	// exchange. Default: 10 seconds.
	RequestTimeout time.Duration
	// Retries is how many PCP or NAT-PMP requests the mapper sends before it
	// gives up on an exchange; the waits double from 250 ms. Default: 4
	// (about 4 seconds).
	Retries int
	// Description is the mapping's name in the router's list. Default:
	// "Heimwolke".
	Description string
	// Logger receives one line per event. Default: slog.Default().
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if len(c.Ports) == 0 {
		c.Ports = DefaultPorts
	}
	if len(c.Protocols) == 0 {
		c.Protocols = []Protocol{ProtocolUPnP, ProtocolPCP, ProtocolNATPMP}
	}
	if c.Lease <= 0 {
		c.Lease = time.Hour
	}
	if c.RetryInterval <= 0 {
		c.RetryInterval = 5 * time.Minute
	}
	if c.RequestTimeout <= 0 {
		c.RequestTimeout = 10 * time.Second
	}
	if c.Retries <= 0 {
		c.Retries = 4
	}
	if c.Description == "" {
		c.Description = "Heimwolke"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// State is a snapshot of the mapper's work.
type State struct {
	// Gateway is the router that PCP and NAT-PMP talk to, when known.
	Gateway netip.Addr `json:"gateway"`
	// ExternalIPv4 is the router's external address as it last reported it.
	ExternalIPv4 netip.Addr `json:"external_ipv4"`
	// Protocols are the protocols the router responded to at the last search.
	Protocols []Protocol `json:"protocols"`
	// Ports contains one entry per configured port, in Config order.
	Ports []PortState `json:"ports"`
	// Updated is when the mapper last changed the state.
	Updated time.Time `json:"updated"`
}

// PortState is the state of one TCP port.
type PortState struct {
	Port uint16 `json:"port"`
	// Mapped reports whether the router forwards the external IPv4 port.
	Mapped bool `json:"mapped"`
	// Protocol is the protocol that mapped the port.
	Protocol Protocol `json:"protocol,omitempty"`
	// ExternalPort is the port on the router's external address.
	ExternalPort uint16 `json:"external_port,omitempty"`
	// Expires is when the router drops the mapping unless the mapper renews
	// it; zero for a permanent mapping.
	Expires time.Time `json:"expires"`
	// Reason is the cause when the port is not mapped, and empty when it is.
	Reason Reason `json:"reason,omitempty"`
	// Error is the last error for this port, for logs and support.
	Error string `json:"error,omitempty"`

	// Pinhole reports whether the router's IPv6 firewall is open for the
	// port on InternalV6.
	Pinhole bool `json:"pinhole"`
	// PinholeProtocol is the protocol that opened the pinhole.
	PinholeProtocol Protocol `json:"pinhole_protocol,omitempty"`
	// PinholeExpires is when the pinhole's lease ends.
	PinholeExpires time.Time `json:"pinhole_expires"`
	// PinholeError is the last error of the pinhole.
	PinholeError string `json:"pinhole_error,omitempty"`
}

// client is one port mapping protocol spoken to the router.
type client interface {
	protocol() Protocol
	// add maps the TCP port and returns what the router granted. A lease of
	// zero in the result means a permanent mapping.
	add(ctx context.Context, port uint16, lease time.Duration) (mapping, error)
	remove(ctx context.Context, port uint16) error
	externalIPv4(ctx context.Context) (netip.Addr, error)
}

// mapping is a port mapping as the router granted it.
type mapping struct {
	externalPort uint16
	lease        time.Duration
	// externalAddr is the router's external address, if the protocol
	// reports it with the mapping.
	externalAddr netip.Addr
}

// A Mapper maps the configured ports on the home router while Run runs.
type Mapper struct {
	cfg Config
	log *slog.Logger

	// mu guards state and clients.
	mu      sync.Mutex
	state   State
	clients []client

	// ports and holes are only used by Run's goroutine.
	ports map[uint16]*portLease
	holes map[uint16]*pinhole
	// pcp6 is the PCP client for IPv6 pinholes, made for the current
	// IPv6 gateway and box address.
	pcp6 *pcpClient
}

// portLease is the mapper's record of a mapped port.
type portLease struct {
	client  client
	renewAt time.Time
}

// pinhole is the mapper's record of an open IPv6 pinhole.
type pinhole struct {
	client  firewall
	id      uint16
	addr    netip.Addr
	renewAt time.Time
}

// New returns a Mapper for cfg. It does not talk to the router until Run or
// ExternalIPv4.
func New(cfg Config) *Mapper {
	cfg = cfg.withDefaults()
	m := &Mapper{
		cfg:   cfg,
		log:   cfg.Logger.With("component", "portmap"),
		ports: make(map[uint16]*portLease),
		holes: make(map[uint16]*pinhole),
	}
	m.state.Ports = make([]PortState, len(cfg.Ports))
	for i, p := range cfg.Ports {
		m.state.Ports[i] = PortState{Port: p, Reason: ReasonPending}
	}
	return m
}

// State returns a copy of the current state.
func (m *Mapper) State() State {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.state
	s.Protocols = slices.Clone(s.Protocols)
	s.Ports = slices.Clone(s.Ports)
	return s
}

// Run maps the ports, renews their leases and retries what failed until ctx
// ends. Then it removes every mapping and pinhole it made and returns nil.
// It returns an error only for an invalid Config.
func (m *Mapper) Run(ctx context.Context) error {
	if err := m.validate(); err != nil {
		return err
	}
	m.log.Info("portmap starting", "ports", m.cfg.Ports, "protocols", m.cfg.Protocols)
	defer m.removeAll()

	for {
		wait := m.refresh(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(wait):
		}
	}
}

func (m *Mapper) validate() error {
	var problems []error
	seen := make(map[uint16]bool)
	for _, p := range m.cfg.Ports {
		if p == 0 {
			problems = append(problems, errors.New("portmap: port 0 in Config.Ports: list ports 1 to 65535"))
		}
		if seen[p] {
			problems = append(problems, fmt.Errorf("portmap: port %d appears twice in Config.Ports: list each port once", p))
		}
		seen[p] = true
	}
	for _, p := range m.cfg.Protocols {
		switch p {
		case ProtocolUPnP, ProtocolPCP, ProtocolNATPMP:
		default:
			problems = append(problems, fmt.Errorf("portmap: unknown protocol %q in Config.Protocols: use upnp, pcp or nat-pmp", p))
		}
	}
	return errors.Join(problems...)
}

// ExternalIPv4 returns the router's external IPv4 address, requested with the
// first protocol that responds. It searches the router first if Run has not
// found it yet. The address may be private or shared (DS-Lite, carrier-grade
// NAT), which callers check with netip.Addr.IsPrivate and IsSharedIPv4. The
// error wraps ErrNoExternalIPv4 when the router reports no address.
func (m *Mapper) ExternalIPv4(ctx context.Context) (netip.Addr, error) {
	clients := m.currentClients()
	if len(clients) == 0 {
		var err error
		if clients, err = m.discover(ctx); err != nil {
			return netip.Addr{}, err
		}
	}

	var problems []error
	for _, c := range clients {
		rctx, cancel := context.WithTimeout(ctx, m.cfg.RequestTimeout)
		addr, err := c.externalIPv4(rctx)
		cancel()
		if err == nil {
			m.setExternal(addr)
			return addr, nil
		}
		problems = append(problems, err)
	}

	return netip.Addr{}, fmt.Errorf("requesting the router's external IPv4 address: %w", errors.Join(problems...))
}

// ErrNoExternalIPv4 means that the router reports no external IPv4 address:
// it has none, or miniupnpd hides a private or shared one.
var ErrNoExternalIPv4 = errors.New("the router reports no external IPv4 address")

// IsSharedIPv4 reports whether addr is in the shared address space of
// carrier-grade NAT, 100.64.0.0/10 (RFC 6598).
func IsSharedIPv4(addr netip.Addr) bool {
	return netip.MustParsePrefix("100.64.0.0/10").Contains(addr.Unmap())
}

func (m *Mapper) currentClients() []client {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.clients)
}

func (m *Mapper) setExternal(addr netip.Addr) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.state.ExternalIPv4 != addr {
		m.log.Info("portmap external address", "address", addr)
	}
	m.state.ExternalIPv4 = addr
	m.state.Updated = time.Now()
}
