// Package netaddr finds the box's public addresses. The public IPv4 address
// comes from the router and from outside DNS and HTTP services, accepted only
// when they agree. The stable global IPv6 address comes from the box's own
// interface, read and watched over rtnetlink (Linux only).
package netaddr

import (
	"errors"
	"net/netip"
)

// Class is the kind of IPv4 connection the box sits behind. Its value is a
// stable code that the admin UI turns into words with the message keys
// "network.class.CODE.title", ".meaning" and ".action".
type Class string

const (
	// ClassPublic: the router holds a public IPv4 address, and the
	// internet sees that same address.
	ClassPublic Class = "public"

	// ClassCGNAT: the router's WAN address is in the shared address
	// space 100.64.0.0/10 (RFC 6598), so the provider translates it and
	// shares the public address with other customers.
	ClassCGNAT Class = "cgnat"

	// ClassDoubleNAT: the router's WAN address is private, or differs
	// from the address the internet sees, so a second router or the
	// provider translates addresses once more.
	ClassDoubleNAT Class = "double_nat"

	// ClassDSLite: the router has no IPv4 address of its own, or one from
	// the DS-Lite range 192.0.0.0/29 (RFC 6333 section 5.7). IPv4 leaves
	// through the provider's tunnel end, and no client can reach the box
	// over IPv4.
	ClassDSLite Class = "ds_lite"

	// ClassNoPublicWAN: the router declines to report its WAN address
	// because it is not public, which leaves CGNAT, a private address
	// behind another router, and DS-Lite. miniupnpd 2.3.1 does this.
	ClassNoPublicWAN Class = "no_public_wan"

	// ClassNoIPv4: no source found any IPv4 address.
	ClassNoIPv4 Class = "no_ipv4"

	// ClassUnknown: outside sources see a public address, but no router
	// reported its WAN address, so whether the address reaches the box
	// is not known.
	ClassUnknown Class = "unknown"
)

// Classes lists every class, for the message catalog test and the admin UI.
var Classes = []Class{ClassPublic, ClassCGNAT, ClassDoubleNAT, ClassDSLite, ClassNoPublicWAN, ClassNoIPv4, ClassUnknown}

// Publishable reports whether an A record with the observed address can
// reach the box, at least after a port forwarding on an upstream router.
// Behind CGNAT and DS-Lite the observed address belongs to the provider,
// and a router that hides its WAN address may sit behind either.
func (c Class) Publishable() bool {
	switch c {
	case ClassPublic, ClassDoubleNAT, ClassUnknown:
		return true
	}
	return false
}

var (
	sharedSpace  = netip.MustParsePrefix("100.64.0.0/10") // RFC 6598
	dsLiteRange  = netip.MustParsePrefix("192.0.0.0/29")  // RFC 6333 section 5.7
	thisNetwork  = netip.MustParsePrefix("0.0.0.0/8")     // RFC 1122 section 3.2.1.3
	benchmarking = netip.MustParsePrefix("198.18.0.0/15") // RFC 2544
)

// Classify returns the class of a connection whose router reports the WAN
// address wan and whose public address, as outside sources agree on it, is
// observed. An invalid wan means no router answered; an invalid observed
// means no outside source agreed. routerErr is the router's error, if any:
// ErrNoIPv4 and ErrNoPublicIPv4 tell what the router lacks.
func Classify(wan, observed netip.Addr, routerErr error) Class {
	wan = wan.Unmap()
	observed = observed.Unmap()

	switch {
	case errors.Is(routerErr, ErrNoIPv4):
		return ClassDSLite
	case !wan.IsValid() && errors.Is(routerErr, ErrNoPublicIPv4):
		return ClassNoPublicWAN
	case !wan.IsValid() && !observed.IsValid():
		return ClassNoIPv4
	case !wan.IsValid():
		return ClassUnknown
	case dsLiteRange.Contains(wan):
		return ClassDSLite
	case sharedSpace.Contains(wan):
		return ClassCGNAT
	case !IsPublicIPv4(wan):
		return ClassDoubleNAT
	case observed.IsValid() && observed != wan:
		return ClassDoubleNAT
	}
	return ClassPublic
}

// IsPublicIPv4 reports whether a is an IPv4 unicast address that can be
// routed on the internet: not private (RFC 1918), shared (RFC 6598),
// loopback, link-local, multicast, DS-Lite or benchmarking space.
//
// NOTE: The documentation ranges (RFC 5737) count as public, so that tests
// in network namespaces can use them as the internet's addresses.
func IsPublicIPv4(a netip.Addr) bool {
	a = a.Unmap()
	if !a.Is4() || !a.IsGlobalUnicast() || a.IsPrivate() {
		return false
	}
	for _, p := range []netip.Prefix{sharedSpace, dsLiteRange, thisNetwork, benchmarking} {
		if p.Contains(a) {
			return false
		}
	}
	return true
}
