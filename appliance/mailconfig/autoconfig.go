package mailconfig

import (
	"encoding/xml"
	"net/http"
	"strconv"
	"strings"
)

// clientConfig is Thunderbird's autoconfig file, version 1.1, as described
// at https://wiki.mozilla.org/Thunderbird:Autoconfiguration:ConfigFileFormat.
type clientConfig struct {
	XMLName  xml.Name      `xml:"clientConfig"`
	Version  string        `xml:"version,attr"`
	Provider emailProvider `xml:"emailProvider"`
}

type emailProvider struct {
	ID               string         `xml:"id,attr"`
	Domain           string         `xml:"domain"`
	DisplayName      string         `xml:"displayName"`
	DisplayShortName string         `xml:"displayShortName"`
	Incoming         []clientServer `xml:"incomingServer"`
	Outgoing         []clientServer `xml:"outgoingServer"`
}

type clientServer struct {
	Type     string `xml:"type,attr"`
	Hostname string `xml:"hostname"`
	Port     int    `xml:"port"`
	// SocketType is "SSL" for implicit TLS or "STARTTLS".
	SocketType string `xml:"socketType"`
	Username   string `xml:"username"`
	// Authentication "password-cleartext" sends the password as is, which
	// is safe here because every server entry uses TLS.
	Authentication string `xml:"authentication"`
}

// emailLocalPartPlaceholder is replaced by Thunderbird with the local part
// of the address that the user typed.
const emailLocalPartPlaceholder = "%EMAILLOCALPART%"

// serveAutoconfig serves GET /mail/config-v1.1.xml?emailaddress=ADDRESS.
// With an address of the domain, the user names are its login name.
// Without one, they are Thunderbird's local-part placeholder.
func (h *Handler) serveAutoconfig(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodGet, http.MethodHead) {
		return
	}

	username := emailLocalPartPlaceholder
	if addr := r.URL.Query().Get("emailaddress"); addr != "" {
		local, domain, ok := splitAddress(addr)
		if !ok {
			h.log.Debug("autoconfig request rejected", "reason", "invalid address", "remote_addr", r.RemoteAddr)
			http.Error(w, "invalid emailaddress parameter: give an address such as anna@"+h.domain, http.StatusBadRequest)
			return
		}
		if domain != h.domain {
			h.log.Debug("autoconfig request rejected", "reason", "other domain", "domain", domain, "remote_addr", r.RemoteAddr)
			http.Error(w, "no mail settings for domain "+strconv.Quote(domain)+": this server serves "+h.domain, http.StatusNotFound)
			return
		}
		username = loginName(local)
	}

	body, err := xml.MarshalIndent(h.clientConfig(username), "", "  ")
	if err != nil {
		h.log.Error("autoconfig encoding failed", "err", err)
		http.Error(w, "internal server error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write([]byte(xml.Header))
	w.Write(body)
	w.Write([]byte("\n"))
}

// clientConfig lists IMAP with implicit TLS, then submission with implicit
// TLS before STARTTLS, which RFC 8314 section 3.3 prefers.
func (h *Handler) clientConfig(username string) clientConfig {
	server := func(typ string, port int, socketType string) clientServer {
		return clientServer{
			Type:           typ,
			Hostname:       h.mailHost,
			Port:           port,
			SocketType:     socketType,
			Username:       username,
			Authentication: "password-cleartext",
		}
	}
	return clientConfig{
		Version: "1.1",
		Provider: emailProvider{
			ID:               h.domain,
			Domain:           h.domain,
			DisplayName:      h.domain,
			DisplayShortName: h.domain,
			Incoming:         []clientServer{server("imap", h.imapPort, "SSL")},
			Outgoing: []clientServer{
				server("smtp", h.submissionTLSPort, "SSL"),
				server("smtp", h.submissionPort, "STARTTLS"),
			},
		},
	}
}

// splitAddress splits addr at its last '@' and returns the local part as
// given and the domain in lower case. It rejects an address that is empty
// on either side, longer than 254 bytes (RFC 5321 section 4.5.3.1.3 with
// the angle brackets removed), or that contains spaces or control
// characters.
func splitAddress(addr string) (local, domain string, ok bool) {
	if len(addr) > 254 {
		return "", "", false
	}
	for i := 0; i < len(addr); i++ {
		if addr[i] <= ' ' || addr[i] == 0x7f {
			return "", "", false
		}
	}
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 {
		return "", "", false
	}
	return addr[:at], strings.ToLower(strings.TrimSuffix(addr[at+1:], ".")), true
}

// loginName returns the box's login name for the local part of an address:
// without a "+tag" suffix, which the box delivers to the same user, and
// with A-Z lowered, because login names are lower case.
// NOTE: an alias address yields the alias's local part, not its owner's
// login, because naming the owner would tell any client who reads the
// alias.
func loginName(local string) string {
	if base, _, tagged := strings.Cut(local, "+"); tagged && base != "" {
		local = base
	}
	b := []byte(local)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
