package netaddr

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"golang.org/x/sys/unix"
)

// InterfaceAddr is one address of a network interface, as an RTM_NEWADDR
// message from rtnetlink (rtnetlink(7)) describes it.
type InterfaceAddr struct {
	Index     int // interface index
	Addr      netip.Addr
	PrefixLen int
	Scope     uint8  // RT_SCOPE_UNIVERSE for global addresses
	Flags     uint32 // IFA_F_*, from IFA_FLAGS when present

	// Created is the kernel's creation stamp (cstamp of
	// struct ifa_cacheinfo), in hundredths of a second since boot; zero
	// when the message has no IFA_CACHEINFO.
	Created uint32
}

// unusableFlags mark addresses that must never be published: temporary
// (privacy) addresses of RFC 8981 change daily, and deprecated, tentative
// or duplicate ones are on their way out or not yet usable.
const unusableFlags = unix.IFA_F_TEMPORARY | unix.IFA_F_DEPRECATED | unix.IFA_F_TENTATIVE | unix.IFA_F_DADFAILED

// parseAddrMessages parses a buffer of netlink messages, as read from an
// rtnetlink socket, and returns the addresses of the RTM_NEWADDR messages
// among them. done is true when the buffer ends a dump with NLMSG_DONE.
func parseAddrMessages(b []byte) (addrs []InterfaceAddr, done bool, err error) {
	for len(b) >= unix.SizeofNlMsghdr {
		length := binary.NativeEndian.Uint32(b[0:4])
		typ := binary.NativeEndian.Uint16(b[4:6])
		if length < unix.SizeofNlMsghdr || int(length) > len(b) {
			return nil, false, fmt.Errorf("netlink message length %d is invalid for a buffer of %d bytes", length, len(b))
		}
		body := b[unix.SizeofNlMsghdr:length]

		switch typ {
		case unix.NLMSG_DONE:
			return addrs, true, nil
		case unix.NLMSG_ERROR:
			return nil, false, netlinkError(body)
		case unix.RTM_NEWADDR:
			a, err := parseAddr(body)
			if err != nil {
				return nil, false, err
			}
			addrs = append(addrs, a)
		}
		b = b[min(nlmAlign(int(length)), len(b)):]
	}
	return addrs, false, nil
}

func netlinkError(body []byte) error {
	if len(body) < 4 {
		return errors.New("netlink error message is truncated")
	}
	errno := -int32(binary.NativeEndian.Uint32(body[0:4]))
	if errno == 0 {
		return nil
	}
	return fmt.Errorf("netlink request failed: %w", unix.Errno(errno))
}

// parseAddr parses struct ifaddrmsg and its attributes (IFA_ADDRESS,
// IFA_LOCAL, IFA_FLAGS, IFA_CACHEINFO).
func parseAddr(body []byte) (InterfaceAddr, error) {
	if len(body) < unix.SizeofIfAddrmsg {
		return InterfaceAddr{}, fmt.Errorf("ifaddrmsg of %d bytes is truncated", len(body))
	}
	a := InterfaceAddr{
		PrefixLen: int(body[1]),
		Flags:     uint32(body[2]),
		Scope:     body[3],
		Index:     int(binary.NativeEndian.Uint32(body[4:8])),
	}

	attrs := body[unix.SizeofIfAddrmsg:]
	var address, local netip.Addr
	for len(attrs) >= unix.SizeofRtAttr {
		length := int(binary.NativeEndian.Uint16(attrs[0:2]))
		typ := binary.NativeEndian.Uint16(attrs[2:4])
		if length < unix.SizeofRtAttr || length > len(attrs) {
			return InterfaceAddr{}, fmt.Errorf("address attribute length %d is invalid for %d remaining bytes", length, len(attrs))
		}
		value := attrs[unix.SizeofRtAttr:length]

		switch typ {
		case unix.IFA_ADDRESS:
			address, _ = netip.AddrFromSlice(value)
		case unix.IFA_LOCAL:
			local, _ = netip.AddrFromSlice(value)
		case unix.IFA_FLAGS:
			if len(value) >= 4 {
				a.Flags = binary.NativeEndian.Uint32(value)
			}
		case unix.IFA_CACHEINFO:
			if len(value) >= unix.SizeofIfaCacheinfo {
				a.Created = binary.NativeEndian.Uint32(value[8:12])
			}
		}
		attrs = attrs[min(rtaAlign(length), len(attrs)):]
	}

	// On point-to-point links IFA_ADDRESS is the peer, and IFA_LOCAL the
	// interface's own address (rtnetlink(7)).
	a.Addr = address
	if local.IsValid() {
		a.Addr = local
	}
	if !a.Addr.IsValid() {
		return InterfaceAddr{}, errors.New("address message has no IFA_ADDRESS attribute")
	}
	return a, nil
}

func nlmAlign(n int) int { return (n + unix.NLMSG_ALIGNTO - 1) &^ (unix.NLMSG_ALIGNTO - 1) }
func rtaAlign(n int) int { return (n + unix.RTA_ALIGNTO - 1) &^ (unix.RTA_ALIGNTO - 1) }

// StableIPv6 picks the address to publish in AAAA records from the
// addresses of the interface with index ifindex (every interface when
// ifindex is 0). It takes only global unicast IPv6 addresses, and skips
// unique local addresses (fc00::/7) and temporary, deprecated, tentative or
// failed ones. Among the rest it prefers SLAAC's stable addresses (stable-privacy of
// RFC 7217, a modified EUI-64 interface identifier, or the base of
// temporary addresses) over static or DHCPv6 ones, and then the newest,
// which carries the current prefix after a prefix change.
func StableIPv6(addrs []InterfaceAddr, ifindex int) (netip.Addr, bool) {
	var candidates []InterfaceAddr
	for _, a := range addrs {
		if (ifindex == 0 || a.Index == ifindex) && publishableIPv6(a) {
			candidates = append(candidates, a)
		}
	}
	if len(candidates) == 0 {
		return netip.Addr{}, false
	}

	best := slices.MaxFunc(candidates, func(x, y InterfaceAddr) int {
		if c := stability(x) - stability(y); c != 0 {
			return c
		}
		if x.Created != y.Created {
			return cmpUint32(x.Created, y.Created)
		}
		return y.Addr.Compare(x.Addr) // the lower address wins a full tie
	})
	return best.Addr, true
}

func publishableIPv6(a InterfaceAddr) bool {
	return a.Addr.Is6() && !a.Addr.Is4In6() &&
		a.Addr.IsGlobalUnicast() && !a.Addr.IsPrivate() &&
		a.Scope == unix.RT_SCOPE_UNIVERSE &&
		a.Flags&unusableFlags == 0
}

// stability ranks an address higher when SLAAC made it to last.
func stability(a InterfaceAddr) int {
	if a.Flags&(unix.IFA_F_STABLE_PRIVACY|unix.IFA_F_MANAGETEMPADDR) != 0 || isEUI64(a.Addr) {
		return 1
	}
	return 0
}

// isEUI64 reports whether the interface identifier of a is a modified
// EUI-64 made from a MAC address, with ff:fe in its middle (RFC 4291
// appendix A).
func isEUI64(a netip.Addr) bool {
	b := a.As16()
	return b[11] == 0xff && b[12] == 0xfe
}

func cmpUint32(x, y uint32) int {
	switch {
	case x < y:
		return -1
	case x > y:
		return 1
	}
	return 0
}
