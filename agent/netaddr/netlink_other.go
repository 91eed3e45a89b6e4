//go:build !linux

package netaddr

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
)

var errNoNetlink = errors.New("reading interface addresses needs rtnetlink, which only Linux has")

// IPv6Finder finds the box's stable global IPv6 address on one interface.
// Outside Linux it always fails.
type IPv6Finder struct {
	Interface string
}

// Lookup fails outside Linux.
func (f *IPv6Finder) Lookup() (netip.Addr, bool, error) {
	return netip.Addr{}, false, errNoNetlink
}

// WatchAddrs fails outside Linux.
func WatchAddrs(ctx context.Context, log *slog.Logger) (<-chan struct{}, error) {
	return nil, errNoNetlink
}
