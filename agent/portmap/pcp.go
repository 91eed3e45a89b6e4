package portmap

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"
)

// PCP constants from RFC 6887 sections 7 and 11.
const (
	pcpVersion     = 2
	pcpOpAnnounce  = 0
	pcpOpMap       = 1
	pcpResponseBit = 0x80
	pcpProtocolTCP = 6

	pcpHeaderSize     = 24
	pcpMapPayloadSize = 36
)

// pcpResultError is a non-zero result code of a PCP response (RFC 6887
// section 7.4).
type pcpResultError byte

// Result codes that classify maps to a Reason.
const (
	pcpUnsuppVersion         pcpResultError = 1
	pcpNotAuthorized         pcpResultError = 2
	pcpCannotProvideExternal pcpResultError = 11
)

func (e pcpResultError) Error() string {
	names := map[pcpResultError]string{
		1:  "UNSUPP_VERSION",
		2:  "NOT_AUTHORIZED",
		3:  "MALFORMED_REQUEST",
		4:  "UNSUPP_OPCODE",
		5:  "UNSUPP_OPTION",
		6:  "MALFORMED_OPTION",
		7:  "NETWORK_FAILURE",
		8:  "NO_RESOURCES",
		9:  "UNSUPP_PROTOCOL",
		10: "USER_EX_QUOTA",
		11: "CANNOT_PROVIDE_EXTERNAL",
		12: "ADDRESS_MISMATCH",
		13: "EXCESSIVE_REMOTE_PEERS",
	}
	if name, ok := names[e]; ok {
		return fmt.Sprintf("PCP result %d (%s)", byte(e), name)
	}
	return fmt.Sprintf("PCP result %d", byte(e))
}

// pcpMapping is the server's reply to a MAP request (RFC 6887 section 11.1).
type pcpMapping struct {
	externalPort uint16
	externalAddr netip.Addr
	lifetime     time.Duration
}

// pcpClient talks PCP (RFC 6887) to the default gateway. It keeps one
// mapping nonce per port, because a renewal or deletion must repeat the
// nonce of the MAP request that created the mapping (section 11.2).
type pcpClient struct {
	gateway netip.Addr
	// client is the box's address, the source address of its requests.
	client  netip.Addr
	retries int
	nonces  map[uint16][12]byte

	// mu guards external, the router's address from the last MAP response.
	mu       sync.Mutex
	external netip.Addr
}

func (c *pcpClient) protocol() Protocol { return ProtocolPCP }

func (c *pcpClient) add(ctx context.Context, port uint16, lease time.Duration) (mapping, error) {
	m, err := c.mapTCP(ctx, port, lease)
	if err != nil {
		return mapping{}, err
	}
	c.mu.Lock()
	c.external = m.externalAddr
	c.mu.Unlock()
	return mapping{externalPort: m.externalPort, lease: m.lifetime, externalAddr: m.externalAddr}, nil
}

func (c *pcpClient) remove(ctx context.Context, port uint16) error {
	_, err := c.mapTCP(ctx, port, 0)
	return err
}

// externalIPv4 returns the address from the last MAP response, because PCP
// has no request for the external address alone.
func (c *pcpClient) externalIPv4(ctx context.Context) (netip.Addr, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.external.IsValid() {
		return netip.Addr{}, errors.New("PCP has no request for the external address, and no MAP response carried it yet")
	}
	return c.external, nil
}

// announce sends an ANNOUNCE request (RFC 6887 section 14.1) to learn
// whether the gateway speaks PCP. A PCP server responds without changing any
// mapping.
func (c *pcpClient) announce(ctx context.Context) error {
	req := make([]byte, pcpHeaderSize)
	req[0] = pcpVersion
	req[1] = pcpOpAnnounce
	clientIP := c.client.As16()
	copy(req[8:24], clientIP[:])

	accept := func(b []byte) bool {
		return len(b) >= 4 && b[1] == pcpOpAnnounce|pcpResponseBit
	}
	resp, err := exchange(ctx, c.client, c.gateway, req, c.retries, accept)
	if err != nil {
		return err
	}
	if code := pcpResultError(resp[3]); code != 0 {
		return code
	}
	if resp[0] != pcpVersion {
		return fmt.Errorf("PCP response has version %d, want %d", resp[0], pcpVersion)
	}
	return nil
}

// addPinhole opens the IPv6 firewall for the TCP port of c.client, which
// must be addr. The port is the pinhole's id.
func (c *pcpClient) addPinhole(ctx context.Context, addr netip.Addr, port uint16, lease time.Duration) (uint16, error) {
	if addr != c.client {
		return 0, fmt.Errorf("PCP pinhole for %s requested from the client for %s", addr, c.client)
	}
	m, err := c.mapTCP(ctx, port, lease)
	if err != nil {
		return 0, fmt.Errorf("PCP MAP for [%s]:%d at %s: %w", addr, port, c.gateway, err)
	}
	if m.externalPort != port {
		c.mapTCP(ctx, port, 0)
		return 0, fmt.Errorf("PCP MAP for [%s]:%d at %s: %w (%d)", addr, port, c.gateway, errOtherPort, m.externalPort)
	}
	return port, nil
}

func (c *pcpClient) updatePinhole(ctx context.Context, port uint16, lease time.Duration) error {
	_, err := c.addPinhole(ctx, c.client, port, lease)
	return err
}

// deletePinhole deletes the pinhole. When the router rejects the deletion,
// which miniupnpd 2.3.1 with nftables does for every IPv6 pinhole, it renews
// the pinhole for one second instead, so that the router drops it after its
// minimum lifetime.
func (c *pcpClient) deletePinhole(ctx context.Context, port uint16) error {
	_, err := c.mapTCP(ctx, port, 0)
	if err == nil {
		return nil
	}
	if errors.Is(err, pcpNotAuthorized) {
		if m, shortErr := c.mapTCP(ctx, port, time.Second); shortErr == nil {
			return fmt.Errorf("PCP MAP deleting [%s]:%d at %s: %w; lease shortened to %v instead", c.client, port, c.gateway, err, m.lifetime)
		}
	}
	return fmt.Errorf("PCP MAP deleting [%s]:%d at %s: %w", c.client, port, c.gateway, err)
}

// mapTCP sends a MAP request for the TCP port, external and internal port
// alike, for lifetime; a lifetime of zero deletes the mapping.
func (c *pcpClient) mapTCP(ctx context.Context, port uint16, lifetime time.Duration) (pcpMapping, error) {
	nonce, ok := c.nonces[port]
	if !ok {
		rand.Read(nonce[:])
	}
	req := buildPCPMap(c.client, nonce, port, lifetime)

	accept := func(b []byte) bool {
		return len(b) >= pcpHeaderSize+pcpMapPayloadSize && bytes.Equal(b[pcpHeaderSize:pcpHeaderSize+12], nonce[:]) ||
			len(b) >= 4 && b[3] == byte(pcpUnsuppVersion) // carries no payload
	}
	resp, err := exchange(ctx, c.client, c.gateway, req, c.retries, accept)
	if err != nil {
		return pcpMapping{}, err
	}
	m, err := parsePCPMap(resp)
	if err != nil {
		return pcpMapping{}, err
	}

	if lifetime > 0 {
		c.nonces[port] = nonce
	} else {
		delete(c.nonces, port)
	}
	return m, nil
}

// buildPCPMap returns a MAP request: the common header (RFC 6887 section
// 7.1) and the MAP payload (section 11.1). It asks for the same external
// port on any external address, which section 11.1 writes as the IPv4-mapped
// ::ffff:0.0.0.0 for an IPv4 client and as :: for an IPv6 one.
func buildPCPMap(client netip.Addr, nonce [12]byte, port uint16, lifetime time.Duration) []byte {
	b := make([]byte, pcpHeaderSize+pcpMapPayloadSize)
	b[0] = pcpVersion
	b[1] = pcpOpMap
	binary.BigEndian.PutUint32(b[4:], uint32(lifetime/time.Second))
	clientIP := client.As16()
	copy(b[8:24], clientIP[:])

	p := b[pcpHeaderSize:]
	copy(p[0:12], nonce[:])
	p[12] = pcpProtocolTCP
	binary.BigEndian.PutUint16(p[16:], port)
	binary.BigEndian.PutUint16(p[18:], port)
	if client.Is4() {
		anyV4 := netip.AddrFrom4([4]byte{}).As16()
		copy(p[20:36], anyV4[:])
	}
	return b
}

// parsePCPMap reads a MAP response (RFC 6887 sections 7.2 and 11.1).
func parsePCPMap(b []byte) (pcpMapping, error) {
	if len(b) < 4 {
		return pcpMapping{}, fmt.Errorf("PCP response of %d bytes is too short", len(b))
	}
	if b[1] != pcpOpMap|pcpResponseBit {
		return pcpMapping{}, fmt.Errorf("PCP response has opcode %d, want %d", b[1], pcpOpMap|pcpResponseBit)
	}
	if code := pcpResultError(b[3]); code != 0 {
		return pcpMapping{}, code
	}
	if b[0] != pcpVersion {
		return pcpMapping{}, fmt.Errorf("PCP response has version %d, want %d", b[0], pcpVersion)
	}
	if len(b) < pcpHeaderSize+pcpMapPayloadSize {
		return pcpMapping{}, fmt.Errorf("PCP MAP response of %d bytes is too short, want %d", len(b), pcpHeaderSize+pcpMapPayloadSize)
	}

	p := b[pcpHeaderSize:]
	return pcpMapping{
		externalPort: binary.BigEndian.Uint16(p[18:]),
		externalAddr: netip.AddrFrom16([16]byte(p[20:36])).Unmap(),
		lifetime:     time.Duration(binary.BigEndian.Uint32(b[4:])) * time.Second,
	}, nil
}
