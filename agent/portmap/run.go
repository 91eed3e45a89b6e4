package portmap

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// refresh maps the ports that are not mapped, renews the leases that are
// half over, and returns how long Run waits before the next refresh.
func (m *Mapper) refresh(ctx context.Context) time.Duration {
	clients := m.currentClients()
	if len(clients) == 0 {
		var err error
		clients, err = m.discover(ctx)
		if err != nil {
			if ctx.Err() == nil {
				m.markAll(ReasonNoService, err)
			}
			return m.cfg.RetryInterval
		}
	}

	next := time.Now().Add(m.cfg.RetryInterval)
	ext, extErr := m.ExternalIPv4(ctx)
	if extErr == nil && !isPublic(ext) || errors.Is(extErr, ErrNoExternalIPv4) {
		m.markNoPublicIPv4(ext, extErr)
	} else {
		lost := false
		for _, port := range m.cfg.Ports {
			renewAt, renewalFailed := m.mapPort(ctx, port, clients)
			lost = lost || renewalFailed
			next = earliest(next, renewAt)
		}
		if lost {
			m.forgetClients()
		}
	}

	next = earliest(next, m.refreshPinholes(ctx))
	return max(time.Until(next), time.Second)
}

// markNoPublicIPv4 records that mapping IPv4 ports is pointless, because the
// router's own address cannot be reached from the internet.
func (m *Mapper) markNoPublicIPv4(ext netip.Addr, err error) {
	if err == nil {
		err = fmt.Errorf("the router's external address %s is private or shared", ext)
	}
	m.markAll(ReasonNoPublicIPv4, err)
}

// earliest returns the earlier of a and b, where the zero time means none.
func earliest(a, b time.Time) time.Time {
	if a.IsZero() || !b.IsZero() && b.Before(a) {
		return b
	}
	return a
}

// isPublic reports whether a mapping on addr can be reached from the
// internet: not private (RFC 1918) and not shared (RFC 6598).
func isPublic(addr netip.Addr) bool {
	return addr.IsGlobalUnicast() && !addr.IsPrivate() && !IsSharedIPv4(addr)
}

// forgetClients makes the next refresh search the router again, because a
// lease that could not be renewed means the router restarted, changed or
// turned the service off.
func (m *Mapper) forgetClients() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.clients = nil
}

// mapPort maps or renews port if it is due and returns when it is due next,
// and whether the renewal of an existing mapping failed.
func (m *Mapper) mapPort(ctx context.Context, port uint16, clients []client) (renewAt time.Time, renewalFailed bool) {
	lease := m.ports[port]
	if lease != nil && time.Now().Before(lease.renewAt) {
		return lease.renewAt, false
	}

	// A renewal goes to the protocol that made the mapping first.
	order := clients
	if lease != nil {
		order = append([]client{lease.client}, without(clients, lease.client)...)
	}

	var reason Reason
	var problems []error
	for _, c := range order {
		rctx, cancel := context.WithTimeout(ctx, m.cfg.RequestTimeout)
		got, err := c.add(rctx, port, m.cfg.Lease)
		cancel()
		if ctx.Err() != nil {
			// Shutting down: the router may have made the mapping before
			// the request was cut off, so removeAll tries to delete it.
			if lease == nil {
				m.ports[port] = &portLease{client: c}
			}
			return time.Time{}, false
		}
		if err == nil && got.externalPort != port {
			err = m.releaseOtherPort(ctx, c, port, got.externalPort)
		}
		if err != nil {
			problems = append(problems, err)
			reason = moreSpecific(reason, classify(err))
			continue
		}
		return m.recordMapped(port, c, got, lease != nil), false
	}

	if ctx.Err() != nil {
		return time.Time{}, false
	}
	err := errors.Join(problems...)
	if lease != nil {
		m.log.Warn("portmap renewal failed", "port", port, "protocol", lease.client.protocol(), "reason", reason, "err", err)
		delete(m.ports, port)
	}
	if m.recordFailed(port, reason, err) {
		m.log.Warn("portmap mapping failed", "port", port, "reason", reason, "err", err)
	}
	return time.Time{}, lease != nil
}

func without(clients []client, c client) []client {
	var rest []client
	for _, other := range clients {
		if other != c {
			rest = append(rest, other)
		}
	}
	return rest
}

// errOtherPort means that the router mapped another external port, because
// the requested one belongs to another device or to the router itself.
var errOtherPort = errors.New("the router offered another external port")

// releaseOtherPort deletes a mapping on an external port that the box did not
// request: the box's services and DNS records use the standard ports.
func (m *Mapper) releaseOtherPort(ctx context.Context, c client, port, other uint16) error {
	rctx, cancel := context.WithTimeout(ctx, m.cfg.RequestTimeout)
	defer cancel()
	if err := c.remove(rctx, port); err != nil {
		m.log.Warn("portmap removing unwanted mapping failed", "port", port, "external_port", other, "protocol", c.protocol(), "err", err)
	}
	return errOtherPort
}

// recordMapped stores a successful mapping and returns when to renew it: at
// half the granted lease, or after the retry interval for a permanent one.
func (m *Mapper) recordMapped(port uint16, c client, got mapping, renewal bool) time.Time {
	now := time.Now()
	renewAt := now.Add(m.cfg.RetryInterval)
	var expires time.Time
	if got.lease > 0 {
		expires = now.Add(got.lease)
		renewAt = earliest(renewAt, now.Add(got.lease/2))
	}
	m.ports[port] = &portLease{client: c, renewAt: renewAt}

	if renewal {
		m.log.Debug("portmap renewed", "port", port, "protocol", c.protocol(), "lease", got.lease)
	} else {
		m.log.Info("portmap mapped", "port", port, "protocol", c.protocol(), "lease", got.lease)
	}
	if got.externalAddr.IsValid() {
		m.setExternal(got.externalAddr)
	}
	m.updatePort(port, func(p *PortState) {
		p.Mapped = true
		p.Protocol = c.protocol()
		p.ExternalPort = got.externalPort
		p.Expires = expires
		p.Reason = ""
		p.Error = ""
	})
	return renewAt
}

// recordFailed stores why port is not mapped and reports whether the reason
// or error changed since the last attempt. Callers log only changes, so that
// a router without port mapping does not fill the log every retry interval.
func (m *Mapper) recordFailed(port uint16, reason Reason, err error) (changed bool) {
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	m.updatePort(port, func(p *PortState) {
		changed = p.Reason != reason || p.Error != msg
		p.Mapped = false
		p.Protocol = ""
		p.ExternalPort = 0
		p.Expires = time.Time{}
		p.Reason = reason
		p.Error = msg
	})
	return changed
}

// markAll records reason for every port. The mapper stops renewing mappings
// that it still holds, so the router drops them when their leases end.
func (m *Mapper) markAll(reason Reason, err error) {
	changed := false
	for _, port := range m.cfg.Ports {
		delete(m.ports, port)
		changed = m.recordFailed(port, reason, err) || changed
	}
	if changed {
		m.log.Warn("portmap no port mapped", "reason", reason, "err", err, "retry_in", m.cfg.RetryInterval)
	}
}

func (m *Mapper) updatePort(port uint16, change func(*PortState)) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.state.Ports {
		if m.state.Ports[i].Port == port {
			change(&m.state.Ports[i])
		}
	}
	m.state.Updated = time.Now()
}

// removeAll deletes every mapping and pinhole that the mapper made. It runs
// after Run's context ended, so it has its own deadline.
func (m *Mapper) removeAll() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*m.cfg.RequestTimeout)
	defer cancel()

	for _, port := range m.cfg.Ports {
		if hole := m.holes[port]; hole != nil {
			m.removePinhole(ctx, port, hole)
		}
		lease := m.ports[port]
		if lease == nil {
			continue
		}
		if err := lease.client.remove(ctx, port); err != nil {
			m.log.Warn("portmap removing mapping failed", "port", port, "protocol", lease.client.protocol(), "err", err)
		} else {
			m.log.Info("portmap removed", "port", port, "protocol", lease.client.protocol())
		}
		m.updatePort(port, func(p *PortState) {
			p.Mapped = false
			p.Expires = time.Time{}
		})
	}
	clear(m.ports)
	clear(m.holes)
	m.log.Info("portmap stopped")
}
