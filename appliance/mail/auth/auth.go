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

// Resolver is the DNS that the checks query. *net.Resolver satisfies it;
// tests pass a resolver that asks their own DNS server.
type Resolver interface {
	LookupTXT(ctx context.Context, name string) ([]string, error)
	LookupMX(ctx context.Context, name string) ([]*net.MX, error)
	LookupIPAddr(ctx context.Context, host string) ([]net.IPAddr, error)
	LookupAddr(ctx context.Context, addr string) ([]string, error)
}

// Disposition is what the receiving server does with a message after the
// checks.
type Disposition int

const (
	// Accept delivers the message to the inbox.
	Accept Disposition = iota
	// Junk delivers the message to the Junk folder, because a check failed
	// but no policy asks for rejection.
	Junk
	// Reject refuses the message with 550 5.7.1, because the domain in
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
