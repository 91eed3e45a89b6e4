package portmap

import (
	"context"
	"net/netip"
	"time"
)

// maxPinholeLease is the longest LeaseTime that WANIPv6FirewallControl:1
// allows for a pinhole: 86400 seconds.
const maxPinholeLease = 24 * time.Hour

// firewall opens IPv6 pinholes on the router: UPnP's WANIPv6FirewallControl
// or PCP's MAP for an IPv6 address.
type firewall interface {
	protocol() Protocol
	// addPinhole opens the TCP port of addr from any remote host and
	// returns an id for updatePinhole and deletePinhole.
	addPinhole(ctx context.Context, addr netip.Addr, port uint16, lease time.Duration) (uint16, error)
	updatePinhole(ctx context.Context, id uint16, lease time.Duration) error
	deletePinhole(ctx context.Context, id uint16) error
}

// refreshPinholes opens or renews the IPv6 pinholes that are due and returns
// when the next one is due, or the zero time when there is none to keep.
func (m *Mapper) refreshPinholes(ctx context.Context) time.Time {
	if m.cfg.NoIPv6 {
		return time.Time{}
	}
	addr, err := m.internalV6()
	if err != nil {
		m.log.Debug("portmap no IPv6 pinholes", "err", err)
		return time.Time{}
	}
	gateway, err := m.gatewayV6()
	if err != nil {
		m.log.Debug("portmap no IPv6 pinholes", "err", err)
		return time.Time{}
	}
	firewall := m.firewallFor(gateway, addr)
	if firewall == nil {
		return time.Time{}
	}

	lease := min(m.cfg.Lease, maxPinholeLease)
	var next time.Time
	for _, port := range m.cfg.Ports {
		hole := m.holes[port]
		if hole != nil && hole.addr != addr {
			// The prefix changed: the old pinhole leads nowhere.
			m.removePinhole(ctx, port, hole)
			hole = nil
		}
		if hole != nil && time.Now().Before(hole.renewAt) {
			next = earliest(next, hole.renewAt)
			continue
		}
		next = earliest(next, m.keepPinhole(ctx, firewall, port, addr, hole, lease))
	}
	return next
}

// keepPinhole renews hole, or opens a new pinhole when there is none or the
// renewal failed. It returns when to renew, or the zero time on failure.
func (m *Mapper) keepPinhole(ctx context.Context, firewall firewall, port uint16, addr netip.Addr, hole *pinhole, lease time.Duration) time.Time {
	rctx, cancel := context.WithTimeout(ctx, m.cfg.RequestTimeout)
	defer cancel()

	renewed := false
	if hole != nil {
		err := hole.client.updatePinhole(rctx, hole.id, lease)
		if ctx.Err() != nil {
			// Shutting down: keep the record, so that removeAll deletes
			// the pinhole.
			return time.Time{}
		}
		if err != nil {
			m.log.Warn("portmap pinhole renewal failed", "port", port, "address", addr, "err", err)
		} else {
			renewed = true
		}
	}
	if !renewed {
		id, err := firewall.addPinhole(rctx, addr, port, lease)
		if err != nil {
			delete(m.holes, port)
			m.recordPinholeFailed(port, err)
			return time.Time{}
		}
		hole = &pinhole{client: firewall, id: id, addr: addr}
		m.holes[port] = hole
		m.log.Info("portmap pinhole opened", "port", port, "address", addr, "protocol", firewall.protocol(), "id", id, "lease", lease)
	}

	now := time.Now()
	hole.renewAt = now.Add(lease / 2)
	m.updatePort(port, func(p *PortState) {
		p.Pinhole = true
		p.PinholeProtocol = hole.client.protocol()
		p.PinholeExpires = now.Add(lease)
		p.PinholeError = ""
	})
	return hole.renewAt
}

func (m *Mapper) recordPinholeFailed(port uint16, err error) {
	m.updatePort(port, func(p *PortState) {
		if p.PinholeError != err.Error() {
			m.log.Warn("portmap pinhole failed", "port", port, "err", err)
		}
		p.Pinhole = false
		p.PinholeExpires = time.Time{}
		p.PinholeError = err.Error()
	})
}

// removePinhole deletes hole on the router and from the mapper's records.
func (m *Mapper) removePinhole(ctx context.Context, port uint16, hole *pinhole) {
	rctx, cancel := context.WithTimeout(ctx, m.cfg.RequestTimeout)
	defer cancel()
	if err := hole.client.deletePinhole(rctx, hole.id); err != nil {
		m.log.Warn("portmap removing pinhole failed", "port", port, "id", hole.id, "err", err)
	} else {
		m.log.Info("portmap pinhole removed", "port", port, "address", hole.addr, "id", hole.id)
	}
	delete(m.holes, port)
	m.updatePort(port, func(p *PortState) {
		p.Pinhole = false
		p.PinholeExpires = time.Time{}
	})
}

// firewallFor returns the first way the router offers to open pinholes for
// addr, in Config.Protocols order, or nil. UPnP needs WANIPv6FirewallControl;
// PCP takes the same MAP request as for IPv4, sent from and for addr to the
// IPv6 gateway (RFC 6887 section 11).
func (m *Mapper) firewallFor(gateway, addr netip.Addr) firewall {
	for _, c := range m.currentClients() {
		switch c := c.(type) {
		case *upnpClient:
			if c.firewall != nil {
				c.useIPv6ForFirewall(gateway, addr)
				return c
			}
		case *pcpClient:
			if m.pcp6 == nil || m.pcp6.gateway != gateway || m.pcp6.client != addr {
				m.pcp6 = &pcpClient{gateway: gateway, client: addr, retries: m.cfg.Retries, nonces: make(map[uint16][12]byte)}
			}
			return m.pcp6
		}
	}
	return nil
}
