//go:build !linux

package mdns

import (
	"net"
	"net/netip"
)

// openSocket returns a UDP socket bound to group port 5353 on ifi.
//
// NOTE: outside Linux the socket comes from net.ListenMulticastUDP, which
// turns multicast loopback off, so other mDNS software on the same host does
// not see the responses. This path is not tested.
func openSocket(ifi net.Interface, group netip.Addr) (*net.UDPConn, error) {
	network := "udp4"
	if group.Is6() {
		network = "udp6"
	}
	return net.ListenMulticastUDP(network, &ifi, net.UDPAddrFromAddrPort(netip.AddrPortFrom(group, port)))
}

// packetDestination returns the zero Addr, so every packet counts as sent to
// the group.
func packetDestination(oob []byte) netip.Addr { return netip.Addr{} }
