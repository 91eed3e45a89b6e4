package dnstest

import (
	"testing"

	"github.com/miekg/dns"
)

func TestServersServeZone(t *testing.T) {
	for name, start := range map[string]func(testing.TB, string, string) *Server{
		"bind": StartBIND,
		"knot": StartKnot,
	} {
		t.Run(name, func(t *testing.T) {
			s := start(t, "example.test", "www IN A 192.0.2.1\n")
			answer := s.Query(t, "www.example.test", dns.TypeA)
			if len(answer) != 1 {
				t.Fatalf("got %d answers for www.example.test A, want 1:\n%s", len(answer), s.Log)
			}
			if got := answer[0].(*dns.A).A.String(); got != "192.0.2.1" {
				t.Errorf("got www.example.test A %s, want 192.0.2.1", got)
			}
		})
	}
}
