package portmap

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// natpmpPort is the UDP port of NAT-PMP and PCP servers (RFC 6886 section
// 3.1, RFC 6887 section 19.1).
const natpmpPort = 5351

// NAT-PMP opcodes (RFC 6886 sections 3.2 and 3.3). A response carries the
// request's opcode plus 128.
const (
	natpmpOpExternalAddress = 0
	natpmpOpMapTCP          = 2
	natpmpResponseBit       = 128
)

// natpmpResultError is a non-zero result code of a NAT-PMP response (RFC 6886
// section 3.5).
type natpmpResultError uint16

// natpmpNetworkFailure is result 3, "Network Failure".
const natpmpNetworkFailure natpmpResultError = 3

func (e natpmpResultError) Error() string {
	names := map[natpmpResultError]string{
		1: "unsupported version",
		2: "not authorized or refused",
		3: "network failure",
		4: "out of resources",
		5: "unsupported opcode",
	}
	if name, ok := names[e]; ok {
		return fmt.Sprintf("NAT-PMP result %d (%s)", uint16(e), name)
	}
	return fmt.Sprintf("NAT-PMP result %d", uint16(e))
}

// natpmpMapping is the router's reply to a mapping request (RFC 6886 section
// 3.3).
type natpmpMapping struct {
	internalPort uint16
	externalPort uint16
	lifetime     time.Duration
}

// natpmpClient talks NAT-PMP (RFC 6886) to the default gateway.
type natpmpClient struct {
	gateway netip.Addr
	// retries is the number of requests sent before giving up.
	retries int
}

func (c *natpmpClient) protocol() Protocol { return ProtocolNATPMP }

// externalIPv4 requests the router's external address (RFC 6886 section
// 3.2).
func (c *natpmpClient) externalIPv4(ctx context.Context) (netip.Addr, error) {
	resp, err := exchange(ctx, netip.Addr{}, c.gateway, []byte{0, natpmpOpExternalAddress}, c.retries, natpmpAccept(natpmpOpExternalAddress))
	if err != nil {
		return netip.Addr{}, err
	}
	addr, err := parseNATPMPExternalAddress(resp)
	if err == natpmpNetworkFailure || err == nil && addr.IsUnspecified() {
		// RFC 6886 section 3.5: result 3 means the gateway has no
		// external address itself. miniupnpd 2.3.1 also sends it when its
		// address is private or shared.
		return netip.Addr{}, fmt.Errorf("NAT-PMP external address at %s: %w: %w", c.gateway, err, ErrNoExternalIPv4)
	}
	return addr, err
}

func parseNATPMPExternalAddress(b []byte) (netip.Addr, error) {
	if err := checkNATPMPHeader(b, natpmpOpExternalAddress, 12); err != nil {
		return netip.Addr{}, err
	}
	return netip.AddrFrom4([4]byte(b[8:12])), nil
}

func (c *natpmpClient) add(ctx context.Context, port uint16, lease time.Duration) (mapping, error) {
	m, err := c.mapTCP(ctx, port, lease)
	if err != nil {
		return mapping{}, err
	}
	return mapping{externalPort: m.externalPort, lease: m.lifetime}, nil
}

func (c *natpmpClient) remove(ctx context.Context, port uint16) error {
	_, err := c.mapTCP(ctx, port, 0)
	return err
}

// mapTCP requests the TCP mapping of the external port to the same internal
// port for lifetime. A lifetime of zero deletes it (RFC 6886 section 3.4).
func (c *natpmpClient) mapTCP(ctx context.Context, port uint16, lifetime time.Duration) (natpmpMapping, error) {
	req := make([]byte, 12)
	req[1] = natpmpOpMapTCP
	binary.BigEndian.PutUint16(req[4:], port)
	if lifetime > 0 {
		binary.BigEndian.PutUint16(req[6:], port)
	}
	binary.BigEndian.PutUint32(req[8:], uint32(lifetime/time.Second))

	resp, err := exchange(ctx, netip.Addr{}, c.gateway, req, c.retries, natpmpAccept(natpmpOpMapTCP))
	if err != nil {
		return natpmpMapping{}, err
	}
	return parseNATPMPMapping(resp)
}

func parseNATPMPMapping(b []byte) (natpmpMapping, error) {
	if err := checkNATPMPHeader(b, natpmpOpMapTCP, 16); err != nil {
		return natpmpMapping{}, err
	}
	return natpmpMapping{
		internalPort: binary.BigEndian.Uint16(b[8:]),
		externalPort: binary.BigEndian.Uint16(b[10:]),
		lifetime:     time.Duration(binary.BigEndian.Uint32(b[12:])) * time.Second,
	}, nil
}

// checkNATPMPHeader checks version, opcode, length and result code of a
// response to a request with opcode op.
func checkNATPMPHeader(b []byte, op byte, size int) error {
	if len(b) < 4 {
		return fmt.Errorf("NAT-PMP response of %d bytes is too short", len(b))
	}
	if b[0] != 0 || b[1] != op|natpmpResponseBit {
		return fmt.Errorf("NAT-PMP response has version %d and opcode %d, want 0 and %d", b[0], b[1], op|natpmpResponseBit)
	}
	if code := binary.BigEndian.Uint16(b[2:]); code != 0 {
		return natpmpResultError(code)
	}
	if len(b) < size {
		return fmt.Errorf("NAT-PMP response of %d bytes is too short, want %d", len(b), size)
	}
	return nil
}

// natpmpAccept returns a filter that keeps only responses to opcode op, so
// that a late response to an earlier request is not taken for this one.
func natpmpAccept(op byte) func([]byte) bool {
	return func(b []byte) bool {
		return len(b) >= 2 && b[1] == op|natpmpResponseBit
	}
}

// errNoResponse means the gateway did not respond on port 5351, because it
// offers neither NAT-PMP nor PCP or a firewall drops the requests.
var errNoResponse = errors.New("no response from the gateway on UDP port 5351")

// exchange sends req to the gateway's port 5351 and returns the first
// response that accept takes. It resends after 250 ms and then doubles the
// wait, as RFC 6886 section 3.1 and RFC 6887 section 8.1.1 describe. But it
// sends only retries requests instead of the RFCs' 9 (about a minute), so
// that a router without the protocol costs a few seconds.
//
// A valid local is the source address to send from, because a PCP server
// rejects a request whose source differs from the client address inside it
// (RFC 6887 section 8.3).
func exchange(ctx context.Context, local, gateway netip.Addr, req []byte, retries int, accept func([]byte) bool) ([]byte, error) {
	var d net.Dialer
	if local.IsValid() {
		d.LocalAddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(local, 0))
	}
	conn, err := d.DialContext(ctx, "udp", netip.AddrPortFrom(gateway, natpmpPort).String())
	if err != nil {
		return nil, fmt.Errorf("opening UDP socket to %s: %w", gateway, err)
	}
	defer conn.Close()

	buf := make([]byte, 1100)
	wait := 250 * time.Millisecond
	for range retries {
		if _, err := conn.Write(req); err != nil {
			return nil, fmt.Errorf("sending to %s: %w", conn.RemoteAddr(), err)
		}
		deadline := time.Now().Add(wait)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		conn.SetReadDeadline(deadline)
		for {
			n, err := conn.Read(buf)
			if errors.Is(err, syscall.ECONNREFUSED) {
				// An ICMP port unreachable: nothing listens on 5351.
				return nil, errNoResponse
			}
			if err != nil {
				break
			}
			if accept(buf[:n]) {
				return buf[:n], nil
			}
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		wait *= 2
	}
	return nil, errNoResponse
}
