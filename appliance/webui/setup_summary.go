package webui

import (
	"strconv"
	"strings"

	"github.com/heimwolke/heimwolke/packages/control"
)

// secretMask stands for a kept secret on the summary, which never shows
// the secret itself.
const secretMask = "••••••••"

// summaryData is the content of the summary step.
type summaryData struct {
	Draft draft
	Mask  string

	// Domain is the domain as shown, DomainASCII its ASCII form when that
	// differs, and Zone the RFC 2136 zone in effect.
	Domain      string
	DomainASCII string
	Zone        string
	// Server is the RFC 2136 server with its port.
	Server string

	// Ports lists the ports that the chosen services need.
	Ports    []control.Port
	Services []serviceChoice
}

func (h *Handler) summaryOf(d draft) summaryData {
	dns, ascii := d.Domain.dnsSettings()
	s := summaryData{
		Draft:    d,
		Mask:     secretMask,
		Domain:   displayDomain(ascii),
		Ports:    d.Services.Ports(),
		Services: serviceChoices(d.Services),
	}
	if s.Domain != ascii {
		s.DomainASCII = ascii
	}
	if dns.RFC2136 != nil {
		s.Zone = displayDomain(dns.RFC2136.Zone)
		s.Server = dns.RFC2136.Server
	}
	return s
}

// PortList returns the port numbers as a comma-separated list.
func (s summaryData) PortList() string {
	numbers := make([]string, len(s.Ports))
	for i, p := range s.Ports {
		numbers[i] = strconv.Itoa(p.Number)
	}
	return strings.Join(numbers, ", ")
}
