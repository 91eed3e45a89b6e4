// Package auth checks where inbound mail comes from with SPF (RFC 7208), DKIM
// (RFC 6376) and DMARC (RFC 7489), records the results in an
// Authentication-Results header field (RFC 8601), and signs outbound mail with
// the box's DKIM keys. DMARC alignment and policy evaluation are implemented
// here; the record lookup and parsing come from go-msgauth.
package auth

import (
	"context"
	"net"
)

// Resolver is the DNS client of the checks. *net.Resolver satisfies it, and
// tests pass a resolver that queries their own DNS server.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
	LookupAddr(ctx context.Context, addr string) ([]string, error)
}

// Disposition is the action that the receiving server takes on a message
// after the checks.
type Disposition int

const (
	// Accept delivers the message to the inbox.
	Accept Disposition = iota
	// Junk delivers the message to the Junk folder, because a check failed
	// but no policy requests rejection.
	Junk
	// Reject rejects the message with 550 5.7.1, because the domain in
	// From publishes DMARC p=reject and the message fails DMARC.
	Reject
)

func (d Disposition) String() string {
	switch d {
	case Accept:
		return "accept"
	case Junk:
		return "junk"
	case Reject:
		return "reject"
	}
	return "unknown"
}
