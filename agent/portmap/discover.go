package portmap

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"
)

// errNoService means that the router responded to none of the configured
// protocols.
var errNoService = errors.New("the router offers none of UPnP IGD, PCP and NAT-PMP")

// discover finds which configured protocols the router responds to and
// stores a client for each, in Config order.
func (m *Mapper) discover(ctx context.Context) ([]client, error) {
	gateway, gwErr := m.gateway()
	var clients []client
	var problems []error
	for _, p := range m.cfg.Protocols {
		c, err := m.probe(ctx, p, gateway, gwErr)
		if err != nil {
			problems = append(problems, fmt.Errorf("%s: %w", p, err))
			continue
		}
		clients = append(clients, c)
	}

	var protocols []Protocol
	for _, c := range clients {
		protocols = append(protocols, c.protocol())
	}
	m.mu.Lock()
	m.clients = clients
	m.state.Gateway = gateway
	m.state.Protocols = protocols
	m.state.Updated = time.Now()
	m.mu.Unlock()

	if len(clients) == 0 {
		return nil, fmt.Errorf("%w: %w", errNoService, errors.Join(problems...))
	}
	m.log.Info("portmap router found", "gateway", gateway, "protocols", protocols)
	return clients, nil
}

// probe returns a client for protocol p if the router responds to it.
func (m *Mapper) probe(ctx context.Context, p Protocol, gateway netip.Addr, gwErr error) (client, error) {
	ctx, cancel := context.WithTimeout(ctx, m.cfg.RequestTimeout)
	defer cancel()

	switch p {
	case ProtocolUPnP:
		c, err := discoverUPnP(ctx, m.cfg.InternalV4, m.cfg.Description)
		if err != nil {
			return nil, err
		}
		return c, nil

	case ProtocolNATPMP:
		if gwErr != nil {
			return nil, gwErr
		}
		c := &natpmpClient{gateway: gateway, retries: m.cfg.Retries}
		if _, err := c.externalIPv4(ctx); err != nil && !errors.Is(err, ErrNoExternalIPv4) {
			return nil, err
		}
		return c, nil

	case ProtocolPCP:
		if gwErr != nil {
			return nil, gwErr
		}
		self, err := m.internalV4(gateway)
		if err != nil {
			return nil, err
		}
		c := &pcpClient{gateway: gateway, client: self, retries: m.cfg.Retries, nonces: make(map[uint16][12]byte)}
		if err := c.announce(ctx); err != nil {
			return nil, err
		}
		return c, nil
	}
	return nil, fmt.Errorf("unknown protocol %q", p)
}

// gateway returns Config.Gateway or the IPv4 default gateway.
func (m *Mapper) gateway() (netip.Addr, error) {
	if m.cfg.Gateway.IsValid() {
		return m.cfg.Gateway, nil
	}
	f, err := os.Open("/proc/net/route")
	if err != nil {
		return netip.Addr{}, fmt.Errorf("finding the router: %w", err)
	}
	defer f.Close()
	return parseDefaultGateway(f, f.Name())
}

// parseDefaultGateway reads Linux's /proc/net/route, whose addresses are
// hexadecimal in host byte order (little-endian on every board the box runs
// on), and returns the gateway of the first default route.
func parseDefaultGateway(r io.Reader, name string) (netip.Addr, error) {
	s := bufio.NewScanner(r)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 3 || fields[1] != "00000000" {
			continue
		}
		b, err := hex.DecodeString(fields[2])
		if err != nil || len(b) != 4 {
			continue
		}
		var a [4]byte
		binary.LittleEndian.PutUint32(a[:], binary.BigEndian.Uint32(b))
		return netip.AddrFrom4(a), nil
	}
	if err := s.Err(); err != nil {
		return netip.Addr{}, fmt.Errorf("reading %s: %w", name, err)
	}
	return netip.Addr{}, fmt.Errorf("no IPv4 default route in %s: the box has no router to ask; check its network cable and the router's DHCP", name)
}

// internalV4 returns Config.InternalV4, or the local address that the kernel
// picks for packets to the gateway. Connecting a UDP socket sends nothing.
func (m *Mapper) internalV4(gateway netip.Addr) (netip.Addr, error) {
	if m.cfg.InternalV4.IsValid() {
		return m.cfg.InternalV4, nil
	}
	conn, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(gateway, natpmpPort)))
	if err != nil {
		return netip.Addr{}, fmt.Errorf("finding the box's address towards %s: %w", gateway, err)
	}
	defer conn.Close()
	return conn.LocalAddr().(*net.UDPAddr).AddrPort().Addr().Unmap(), nil
}

// internalV6 returns Config.InternalV6, or the first global unicast IPv6
// address outside fc00::/7 (unique local addresses) on an interface that is
// up.
func (m *Mapper) internalV6() (netip.Addr, error) {
	if m.cfg.InternalV6.IsValid() {
		return m.cfg.InternalV6, nil
	}
	ifaces, err := net.Interfaces()
	if err != nil {
		return netip.Addr{}, fmt.Errorf("listing interfaces: %w", err)
	}
	for _, iface := range ifaces {
		if iface.Flags&net.FlagUp == 0 || iface.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, err := iface.Addrs()
		if err != nil {
			continue
		}
		for _, a := range addrs {
			prefix, err := netip.ParsePrefix(a.String())
			if err != nil {
				continue
			}
			ip := prefix.Addr()
			if ip.Is6() && !ip.Is4In6() && ip.IsGlobalUnicast() && !ip.IsPrivate() {
				return ip, nil
			}
		}
	}
	return netip.Addr{}, errors.New("the box has no global IPv6 address")
}

// gatewayV6 returns the IPv6 default gateway from /proc/net/ipv6_route, with
// its interface as zone when it is a link-local address.
func (m *Mapper) gatewayV6() (netip.Addr, error) {
	f, err := os.Open("/proc/net/ipv6_route")
	if err != nil {
		return netip.Addr{}, fmt.Errorf("finding the IPv6 default gateway: %w", err)
	}
	defer f.Close()
	return parseDefaultGatewayV6(f, f.Name())
}

// parseDefaultGatewayV6 reads Linux's /proc/net/ipv6_route: destination,
// prefix length, source, source prefix length, next hop, metric, reference
// count, use count, flags and interface, addresses as 32 hexadecimal digits.
func parseDefaultGatewayV6(r io.Reader, name string) (netip.Addr, error) {
	s := bufio.NewScanner(r)
	for s.Scan() {
		fields := strings.Fields(s.Text())
		if len(fields) < 10 || fields[0] != strings.Repeat("0", 32) || fields[1] != "00" {
			continue
		}
		b, err := hex.DecodeString(fields[4])
		if err != nil || len(b) != 16 {
			continue
		}
		gw := netip.AddrFrom16([16]byte(b))
		if gw.IsUnspecified() {
			continue
		}
		if gw.IsLinkLocalUnicast() {
			gw = gw.WithZone(fields[9])
		}
		return gw, nil
	}
	if err := s.Err(); err != nil {
		return netip.Addr{}, fmt.Errorf("reading %s: %w", name, err)
	}
	return netip.Addr{}, fmt.Errorf("no IPv6 default route in %s", name)
}
