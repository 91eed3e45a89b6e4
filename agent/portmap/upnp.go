package portmap

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/huin/goupnp"
	"github.com/huin/goupnp/dcps/internetgateway2"
	"github.com/huin/goupnp/soap"
)

// UPnP error codes of WANIPConnection (UPnP IGD v2, WANIPConnection:2
// service, section 2.4) that the mapper handles.
const (
	upnpActionNotAuthorized    = 606
	upnpConflictInMappingEntry = 718
	upnpOnlyPermanentLeases    = 725
)

// Search targets of the two versions of the Internet Gateway Device.
const (
	igd1 = "urn:schemas-upnp-org:device:InternetGatewayDevice:1"
	igd2 = "urn:schemas-upnp-org:device:InternetGatewayDevice:2"
)

// wanConnection is the part of the WANIPConnection:1, WANIPConnection:2 and
// WANPPPConnection:1 services that the mapper uses; the three share these
// actions.
type wanConnection interface {
	AddPortMappingCtx(ctx context.Context, remoteHost string, externalPort uint16, protocol string, internalPort uint16, internalClient string, enabled bool, description string, leaseDuration uint32) error
	DeletePortMappingCtx(ctx context.Context, remoteHost string, externalPort uint16, protocol string) error
	GetExternalIPAddressCtx(ctx context.Context) (string, error)
}

// upnpClient maps ports through one WAN connection service of an Internet
// Gateway Device.
type upnpClient struct {
	proto    Protocol
	conn     wanConnection
	firewall *internetgateway2.WANIPv6FirewallControl1
	// firewall6 is firewall reached over IPv6; only Run's goroutine uses
	// it.
	firewall6   *internetgateway2.WANIPv6FirewallControl1
	location    *url.URL
	internal    netip.Addr
	description string

	// mu guards permanentOnly, which is set once the router returned error
	// 725 because it keeps only mappings without a lease (UPnP IGD v1).
	mu            sync.Mutex
	permanentOnly bool
}

func (c *upnpClient) protocol() Protocol { return c.proto }

func (c *upnpClient) externalIPv4(ctx context.Context) (netip.Addr, error) {
	s, err := c.conn.GetExternalIPAddressCtx(ctx)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("UPnP GetExternalIPAddress at %s: %w", c.location, err)
	}
	if s == "" || s == "0.0.0.0" {
		// miniupnpd 2.3.1 returns an empty address when its own is
		// private or shared.
		return netip.Addr{}, fmt.Errorf("UPnP GetExternalIPAddress at %s returned %q: %w", c.location, s, ErrNoExternalIPv4)
	}
	addr, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("UPnP GetExternalIPAddress at %s returned %q: %w", c.location, s, err)
	}
	return addr.Unmap(), nil
}

// add maps the TCP port with AddPortMapping. A router that keeps only
// permanent mappings (error 725) gets the request again with lease 0, and
// the mapper then refreshes the mapping at its retry interval.
// NOTE: miniupnpd accepts leases, so no test runs the error 725 path.
func (c *upnpClient) add(ctx context.Context, port uint16, lease time.Duration) (mapping, error) {
	c.mu.Lock()
	if c.permanentOnly {
		lease = 0
	}
	c.mu.Unlock()

	err := c.conn.AddPortMappingCtx(ctx, "", port, "TCP", port, c.internal.String(), true, c.description, uint32(lease/time.Second))
	if upnpErrorCode(err) == upnpOnlyPermanentLeases && lease > 0 {
		c.mu.Lock()
		c.permanentOnly = true
		c.mu.Unlock()
		lease = 0
		err = c.conn.AddPortMappingCtx(ctx, "", port, "TCP", port, c.internal.String(), true, c.description, 0)
	}
	if err != nil {
		return mapping{}, fmt.Errorf("UPnP AddPortMapping of TCP port %d to %s at %s: %w", port, c.internal, c.location, err)
	}
	return mapping{externalPort: port, lease: lease}, nil
}

func (c *upnpClient) remove(ctx context.Context, port uint16) error {
	if err := c.conn.DeletePortMappingCtx(ctx, "", port, "TCP"); err != nil {
		return fmt.Errorf("UPnP DeletePortMapping of TCP port %d at %s: %w", port, c.location, err)
	}
	return nil
}

// IANA protocol number of TCP, which WANIPv6FirewallControl:1 expects in its
// Protocol arguments.
const ianaTCP = 6

// addPinhole opens the router's IPv6 firewall for the TCP port of addr from
// any remote host (WANIPv6FirewallControl:1 AddPinhole). It returns the
// pinhole's UniqueID, which renewal and deletion need.
func (c *upnpClient) addPinhole(ctx context.Context, addr netip.Addr, port uint16, lease time.Duration) (uint16, error) {
	id, err := c.firewall6.AddPinholeCtx(ctx, "", 0, addr.String(), port, ianaTCP, uint32(lease/time.Second))
	if err != nil {
		return 0, fmt.Errorf("UPnP AddPinhole for [%s]:%d at %s: %w", addr, port, c.location, err)
	}
	return id, nil
}

func (c *upnpClient) updatePinhole(ctx context.Context, id uint16, lease time.Duration) error {
	if err := c.firewall6.UpdatePinholeCtx(ctx, id, uint32(lease/time.Second)); err != nil {
		return fmt.Errorf("UPnP UpdatePinhole %d at %s: %w", id, c.location, err)
	}
	return nil
}

func (c *upnpClient) deletePinhole(ctx context.Context, id uint16) error {
	if err := c.firewall6.DeletePinholeCtx(ctx, id); err != nil {
		return fmt.Errorf("UPnP DeletePinhole %d at %s: %w", id, c.location, err)
	}
	return nil
}

// useIPv6ForFirewall makes the pinhole actions go to the router's IPv6
// address gateway from the box's address local. miniupnpd 2.3.1 rejects
// AddPinhole over IPv4 with error 606, and in secure mode it accepts only
// pinholes for the address that the request comes from.
func (c *upnpClient) useIPv6ForFirewall(gateway, local netip.Addr) {
	endpoint := c.firewall.SOAPClient.EndpointURL
	_, port, err := net.SplitHostPort(endpoint.Host)
	if err != nil {
		port = "80"
	}
	endpoint.Host = net.JoinHostPort(gateway.String(), port)
	if c.firewall6 != nil && c.firewall6.SOAPClient.EndpointURL == endpoint {
		return
	}

	dialer := &net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(local, 0))}
	soapClient := soap.NewSOAPClient(endpoint)
	soapClient.HTTPClient = http.Client{Transport: &http.Transport{DialContext: dialer.DialContext}}
	fw := *c.firewall
	fw.SOAPClient = soapClient
	c.firewall6 = &fw
}

// upnpErrorCode returns the UPnP error code in a SOAP fault, or 0.
func upnpErrorCode(err error) int {
	var fault *soap.SOAPFaultError
	if errors.As(err, &fault) {
		return fault.Detail.UPnPError.Errorcode
	}
	return 0
}

// discoverUPnP searches the LAN with SSDP for Internet Gateway Devices of
// both versions and returns a client for the first WAN connection service it
// finds, preferring IGD v2. internal is the box's LAN address; the zero value
// means the address from which the device was discovered.
func discoverUPnP(ctx context.Context, internal netip.Addr, description string) (*upnpClient, error) {
	type result struct {
		devices []goupnp.MaybeRootDevice
		err     error
	}
	var v1, v2 result
	var wg sync.WaitGroup
	wg.Go(func() { v2.devices, v2.err = goupnp.DiscoverDevicesCtx(ctx, igd2) })
	wg.Go(func() { v1.devices, v1.err = goupnp.DiscoverDevicesCtx(ctx, igd1) })
	wg.Wait()

	var problems []string
	for _, r := range []result{v2, v1} {
		if r.err != nil {
			problems = append(problems, r.err.Error())
			continue
		}
		for _, d := range r.devices {
			if d.Err != nil {
				problems = append(problems, fmt.Sprintf("device at %s: %v", d.Location, d.Err))
				continue
			}
			if c := upnpClientFor(d, internal, description); c != nil {
				return c, nil
			}
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("no UPnP Internet Gateway Device with a WAN connection service (%s): %w", strings.Join(problems, "; "), errNoIGD)
	}
	return nil, errNoIGD
}

var errNoIGD = errors.New("no UPnP Internet Gateway Device answered the SSDP search")

// upnpClientFor returns a client for the first WAN connection service of the
// device, or nil when it has none.
func upnpClientFor(d goupnp.MaybeRootDevice, internal netip.Addr, description string) *upnpClient {
	if !internal.IsValid() && d.LocalAddr != nil {
		if a, ok := netip.AddrFromSlice(d.LocalAddr); ok {
			internal = a.Unmap()
		}
	}
	c := &upnpClient{location: d.Location, internal: internal, description: description}

	if conns, _ := internetgateway2.NewWANIPConnection2ClientsFromRootDevice(d.Root, d.Location); len(conns) > 0 {
		c.proto, c.conn = ProtocolUPnPIGD2, conns[0]
	} else if conns, _ := internetgateway2.NewWANIPConnection1ClientsFromRootDevice(d.Root, d.Location); len(conns) > 0 {
		c.proto, c.conn = ProtocolUPnPIGD1, conns[0]
	} else if conns, _ := internetgateway2.NewWANPPPConnection1ClientsFromRootDevice(d.Root, d.Location); len(conns) > 0 {
		c.proto, c.conn = ProtocolUPnPIGD1, conns[0]
	} else {
		return nil
	}

	if fws, _ := internetgateway2.NewWANIPv6FirewallControl1ClientsFromRootDevice(d.Root, d.Location); len(fws) > 0 {
		c.firewall = fws[0]
	}
	return c
}
