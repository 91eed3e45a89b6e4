package control

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
)

// SchemaVersion is the version of the Settings document that this package
// reads and writes. A change that old readers would misread gets a new
// version.
const SchemaVersion = 1

// Settings is the agent's configuration as the setup wizard collects it. The
// agent stores it with SaveSettings.
type Settings struct {
	// SchemaVersion must be SchemaVersion.
	SchemaVersion int `json:"schema_version"`
	// Domain is the household's domain in ASCII, for example "example.org"
	// or "xn--mller-kva.de" for müller.de. Empty means that the household
	// has no domain yet: the box then serves the home network only, under
	// its mDNS name, with certificates from a certificate authority on the
	// box.
	Domain string `json:"domain"`
	// Language is the language of the agent's notices: "de" or "en".
	Language string          `json:"language"`
	DNS      DNSSettings     `json:"dns"`
	ACME     ACMESettings    `json:"acme"`
	Updates  UpdateSettings  `json:"updates"`
	Relay    RelaySettings   `json:"relay"`
	Router   RouterSettings  `json:"router"`
	Mail     MailSettings    `json:"mail"`
	Services ServiceSettings `json:"services"`
}

// Dynamic DNS providers in DNSSettings.Provider.
const (
	// DNSHetzner updates the zone at Hetzner DNS through the Hetzner Cloud
	// API with DNSSettings.Token.
	DNSHetzner = "hetzner"
	// DNSRFC2136 sends dynamic updates (RFC 2136) signed with TSIG (RFC
	// 8945) to the server in DNSSettings.RFC2136.
	DNSRFC2136 = "rfc2136"
	// DNSDeSEC updates a name at deSEC (dedyn.io) through its dynDNS
	// endpoint with DNSSettings.Token.
	DNSDeSEC = "desec"
	// DNSDynDNS2 calls the dynDNS2 update URL of another provider with the
	// account in DNSSettings.DynDNS2.
	DNSDynDNS2 = "dyndns2"
)

// DNSSettings configures dynamic DNS.
type DNSSettings struct {
	// Provider is one of the DNS* constants. Empty means that the
	// household keeps DNS up to date itself, or has no domain.
	Provider string `json:"provider,omitempty"`
	// Hostname is the name that the agent points at the box's addresses.
	// It is required with a provider.
	Hostname string `json:"hostname,omitempty"`
	// Token is the API token of DNSHetzner and DNSDeSEC: a secret that
	// LogValue hides.
	Token string `json:"token,omitempty"`
	// RFC2136 is required with DNSRFC2136 and must be nil otherwise.
	RFC2136 *RFC2136Settings `json:"rfc2136,omitempty"`
	// DynDNS2 is required with DNSDynDNS2 and must be nil otherwise.
	DynDNS2 *DynDNS2Settings `json:"dyndns2,omitempty"`
}

// TSIG algorithms in RFC2136Settings.Algorithm (RFC 8945 section 6).
const (
	TSIGHMACSHA256 = "hmac-sha256"
	TSIGHMACSHA512 = "hmac-sha512"
)

// RFC2136Settings is the name server that accepts dynamic updates (RFC
// 2136) for the zone, and the TSIG key that signs them (RFC 8945).
type RFC2136Settings struct {
	// Server is the host:port of the server that takes the updates,
	// usually the zone's primary on port 53.
	Server string `json:"server"`
	// Zone is the zone that contains DNSSettings.Hostname, in ASCII.
	Zone string `json:"zone"`
	// KeyName is the TSIG key's name as configured on the server.
	KeyName string `json:"key_name"`
	// Algorithm is TSIGHMACSHA256 or TSIGHMACSHA512.
	Algorithm string `json:"algorithm"`
	// Secret is the key in standard base64 with padding: a secret that
	// LogValue hides.
	Secret string `json:"secret"`
}

// DynDNS2Settings is an account at a provider that takes the dynDNS2
// protocol: an HTTP GET of the update URL with Basic auth.
type DynDNS2Settings struct {
	// UpdateURL is the https URL of the update endpoint, for example
	// https://update.example.net/nic/update.
	UpdateURL string `json:"update_url"`
	Username  string `json:"username"`
	// Password is a secret that LogValue hides.
	Password string `json:"password"`
}

// ACMESettings configures certificates.
type ACMESettings struct {
	// Email is the contact address that the certificate authority
	// receives. It is required with a Domain and unused without one.
	Email string `json:"email"`
	// DirectoryURL is the https URL of the ACME directory; empty means the
	// agent's default certificate authority.
	DirectoryURL string `json:"directory_url,omitempty"`
}

// UpdateSettings configures over-the-air updates.
type UpdateSettings struct {
	// Automatic lets the agent install updates without asking.
	Automatic bool `json:"automatic"`
	// Channel is "stable" or "testing".
	Channel string `json:"channel"`
	// Hour is the local hour (0-23) at which automatic updates install.
	Hour int `json:"hour"`
}

// RelaySettings configures the tunnel to heimwolke-relay, for boxes without
// a public IPv4 address.
type RelaySettings struct {
	Enabled bool `json:"enabled"`
	// Address is the relay's host:port; required when Enabled.
	Address string `json:"address,omitempty"`
}

// RouterSettings configures what the agent may change on the home router.
type RouterSettings struct {
	// PortMapping lets the agent ask the router to forward the ports of
	// ServiceSettings.Ports to the box, with PCP (RFC 6887), NAT-PMP (RFC
	// 6886) or UPnP IGD, whichever the router supports.
	PortMapping bool `json:"port_mapping"`
}

// MailSettings configures outgoing mail.
type MailSettings struct {
	// Smarthost is the server that relays all outgoing mail. Nil means
	// that the box delivers mail straight to the recipients' servers.
	Smarthost *SmarthostSettings `json:"smarthost,omitempty"`
}

// TLS modes of SmarthostSettings.TLS.
const (
	// SmarthostImplicitTLS starts TLS on connect (RFC 8314 section 3.3),
	// usually on port 465.
	SmarthostImplicitTLS = "implicit"
	// SmarthostSTARTTLS upgrades a plain connection with STARTTLS (RFC
	// 3207), usually on port 587.
	SmarthostSTARTTLS = "starttls"
)

// SmarthostSettings is an SMTP server that relays the box's outgoing mail,
// for example the household's mail provider.
type SmarthostSettings struct {
	Host string `json:"host"`
	Port int    `json:"port"`
	// TLS is SmarthostImplicitTLS or SmarthostSTARTTLS. There is no
	// plaintext mode.
	TLS string `json:"tls"`
	// Username and Password log in with SMTP AUTH (RFC 4954). Both empty
	// means that the smarthost accepts the box without a login.
	Username string `json:"username,omitempty"`
	// Password is a secret that LogValue hides.
	Password string `json:"password,omitempty"`
}

// ServiceSettings lists the services that the household uses. The web
// interface for accounts and settings runs in any case.
type ServiceSettings struct {
	Website bool `json:"website"`
	Mail    bool `json:"mail"`
	// CalendarContacts is CalDAV and CardDAV.
	CalendarContacts bool `json:"calendar_contacts"`
	// Files is WebDAV.
	Files bool `json:"files"`
	// Chat is XMPP.
	Chat bool `json:"chat"`
}

// Port is a TCP port that the box needs reachable from the internet.
type Port struct {
	Number int
	// Purpose names what the port carries, in English, for logs and
	// router port mapping descriptions.
	Purpose string
}

// Ports returns the TCP ports that the enabled services need open on the
// router, in ascending order. Ports 80 and 443 are always needed: they carry
// the web interface, the ACME http-01 challenge (RFC 8555 section 8.3) and
// every web-based service.
func (s ServiceSettings) Ports() []Port {
	ports := []Port{{80, "HTTP"}, {443, "HTTPS"}}
	if s.Mail {
		ports = append(ports,
			Port{25, "SMTP"},
			Port{465, "SMTP submission with TLS"},
			Port{587, "SMTP submission"},
			Port{993, "IMAP with TLS"})
	}
	if s.Chat {
		ports = append(ports,
			Port{5222, "XMPP clients"},
			Port{5223, "XMPP clients with TLS"},
			Port{5269, "XMPP servers"})
	}
	slices.SortFunc(ports, func(a, b Port) int { return a.Number - b.Number })
	return ports
}

// LogValue hides the secrets when settings are logged: the DNS token, the
// TSIG secret, the dynDNS2 password and the smarthost password.
func (s Settings) LogValue() slog.Value {
	const hidden = "(hidden)"
	if s.DNS.Token != "" {
		s.DNS.Token = hidden
	}
	// The pointed-to structs belong to the caller, so change copies.
	if r := s.DNS.RFC2136; r != nil {
		c := *r
		c.Secret = hidden
		s.DNS.RFC2136 = &c
	}
	if d := s.DNS.DynDNS2; d != nil {
		c := *d
		c.Password = hidden
		s.DNS.DynDNS2 = &c
	}
	if m := s.Mail.Smarthost; m != nil {
		c := *m
		if c.Password != "" {
			c.Password = hidden
		}
		s.Mail.Smarthost = &c
	}
	type plain Settings // without the LogValue method, to avoid recursion
	return slog.AnyValue(plain(s))
}

// problemList collects the invalid fields of a message.
type problemList []Problem

func (l *problemList) add(field, format string, args ...any) {
	*l = append(*l, Problem{field, fmt.Sprintf(format, args...)})
}

// Validate reports every invalid field of s, with a hint for each.
func (s Settings) Validate() error {
	var problems problemList
	if s.SchemaVersion != SchemaVersion {
		problems.add("schema_version", "got %d, want %d", s.SchemaVersion, SchemaVersion)
	}
	if s.Domain != "" {
		if err := checkDomainName(s.Domain); err != nil {
			problems.add("domain", "%v", err)
		}
	}
	if s.Language != "de" && s.Language != "en" {
		problems.add("language", "got %q, want \"de\" or \"en\"", s.Language)
	}

	s.DNS.validate(&problems, s.Domain)
	s.ACME.validate(&problems, s.Domain)

	if s.Updates.Channel != "stable" && s.Updates.Channel != "testing" {
		problems.add("updates.channel", "got %q, want \"stable\" or \"testing\"", s.Updates.Channel)
	}
	if s.Updates.Hour < 0 || s.Updates.Hour > 23 {
		problems.add("updates.hour", "got %d, want an hour from 0 to 23", s.Updates.Hour)
	}

	if s.Relay.Enabled {
		if err := checkHostPort(s.Relay.Address); err != nil {
			problems.add("relay.address", "%v", err)
		}
	}
	if s.Mail.Smarthost != nil {
		s.Mail.Smarthost.validate(&problems)
	}
	return newValidationError(problems)
}

func (d DNSSettings) validate(problems *problemList, domain string) {
	if d.Provider != "" {
		switch {
		case !slices.Contains([]string{DNSHetzner, DNSRFC2136, DNSDeSEC, DNSDynDNS2}, d.Provider):
			problems.add("dns.provider", "got %q, want one of %s, %s, %s, %s or nothing",
				d.Provider, DNSHetzner, DNSRFC2136, DNSDeSEC, DNSDynDNS2)
		case domain == "":
			problems.add("dns.provider", "got %q without a domain: set the domain, or leave the provider empty", d.Provider)
		}
		if err := checkDomainName(d.Hostname); err != nil {
			problems.add("dns.hostname", "%v", err)
		}
	}

	if len(d.Token) > maxSecretLen || strings.ContainsFunc(d.Token, isControl) {
		problems.add("dns.token", "invalid: use at most %d printable characters", maxSecretLen)
	} else if d.Token == "" && (d.Provider == DNSHetzner || d.Provider == DNSDeSEC) {
		problems.add("dns.token", "missing: %s needs the API token", d.Provider)
	}

	switch {
	case d.Provider == DNSRFC2136 && d.RFC2136 == nil:
		problems.add("dns.rfc2136", "missing: %s needs the server, zone and TSIG key", DNSRFC2136)
	case d.Provider == DNSRFC2136:
		d.RFC2136.validate(problems, d.Hostname)
	case d.RFC2136 != nil:
		problems.add("dns.rfc2136", "set with provider %q: set it only with %s", d.Provider, DNSRFC2136)
	}
	switch {
	case d.Provider == DNSDynDNS2 && d.DynDNS2 == nil:
		problems.add("dns.dyndns2", "missing: %s needs the update URL and the account", DNSDynDNS2)
	case d.Provider == DNSDynDNS2:
		d.DynDNS2.validate(problems)
	case d.DynDNS2 != nil:
		problems.add("dns.dyndns2", "set with provider %q: set it only with %s", d.Provider, DNSDynDNS2)
	}
}

// maxSecretLen caps tokens, passwords and keys in bytes.
const maxSecretLen = 4096

func (r RFC2136Settings) validate(problems *problemList, hostname string) {
	if err := checkHostPort(r.Server); err != nil {
		problems.add("dns.rfc2136.server", "%v", err)
	}
	if err := checkDomainName(r.Zone); err != nil {
		problems.add("dns.rfc2136.zone", "%v", err)
	} else if !InZone(hostname, r.Zone) {
		problems.add("dns.rfc2136.zone", "zone %q does not contain the hostname %q: give the zone that the name belongs to", r.Zone, hostname)
	}
	if err := checkKeyName(r.KeyName); err != nil {
		problems.add("dns.rfc2136.key_name", "%v", err)
	}
	if r.Algorithm != TSIGHMACSHA256 && r.Algorithm != TSIGHMACSHA512 {
		problems.add("dns.rfc2136.algorithm", "got %q, want %q or %q", r.Algorithm, TSIGHMACSHA256, TSIGHMACSHA512)
	}
	key, err := base64.StdEncoding.Strict().DecodeString(r.Secret)
	if err != nil || len(key) == 0 || len(r.Secret) > maxSecretLen {
		problems.add("dns.rfc2136.secret", "invalid: give the key in base64 as tsig-keygen prints it")
	}
}

// InZone reports whether name is zone or below it, ignoring ASCII case.
func InZone(name, zone string) bool {
	name, zone = strings.ToLower(name), strings.ToLower(zone)
	return name == zone || strings.HasSuffix(name, "."+zone)
}

// checkKeyName accepts a TSIG key name: a domain name of one or more labels
// (RFC 8945 section 4.2), which servers such as BIND also allow with
// underscores.
func checkKeyName(name string) error {
	trimmed := strings.TrimSuffix(name, ".")
	if trimmed == "" || len(trimmed) > 253 {
		return fmt.Errorf("got %q, want the key name as configured on the server, such as heimwolke-key", name)
	}
	for _, label := range strings.Split(trimmed, ".") {
		if !isLabel(strings.ReplaceAll(label, "_", "a")) {
			return fmt.Errorf("got %q, want labels of letters, digits, hyphens and underscores", name)
		}
	}
	return nil
}

func (d DynDNS2Settings) validate(problems *problemList) {
	if u, err := url.Parse(d.UpdateURL); err != nil || u.Scheme != "https" || u.Host == "" || u.User != nil {
		problems.add("dns.dyndns2.update_url", "got %q, want an https URL without a login, such as https://update.example.net/nic/update", d.UpdateURL)
	}
	if d.Username == "" || len(d.Username) > 256 || strings.ContainsFunc(d.Username, isControl) {
		problems.add("dns.dyndns2.username", "invalid: give the account's user name, at most 256 printable characters")
	}
	if d.Password == "" || len(d.Password) > maxSecretLen || strings.ContainsFunc(d.Password, isControl) {
		problems.add("dns.dyndns2.password", "invalid: give the account's password, at most %d printable characters", maxSecretLen)
	}
}

func (a ACMESettings) validate(problems *problemList, domain string) {
	if domain != "" || a.Email != "" {
		if addr, err := mail.ParseAddress(a.Email); err != nil || addr.Address != a.Email {
			problems.add("acme.email", "got %q, want a plain address such as name@example.org", a.Email)
		}
	}
	if a.DirectoryURL != "" {
		if u, err := url.Parse(a.DirectoryURL); err != nil || u.Scheme != "https" || u.Host == "" {
			problems.add("acme.directory_url", "got %q, want an https URL or nothing for the default", a.DirectoryURL)
		}
	}
}

func (m SmarthostSettings) validate(problems *problemList) {
	if err := checkHost(m.Host); err != nil {
		problems.add("mail.smarthost.host", "%v", err)
	}
	if m.Port < 1 || m.Port > 65535 {
		problems.add("mail.smarthost.port", "got %d, want a port from 1 to 65535, usually 465 or 587", m.Port)
	}
	if m.TLS != SmarthostImplicitTLS && m.TLS != SmarthostSTARTTLS {
		problems.add("mail.smarthost.tls", "got %q, want %q or %q", m.TLS, SmarthostImplicitTLS, SmarthostSTARTTLS)
	}
	if len(m.Username) > 256 || strings.ContainsFunc(m.Username, isControl) {
		problems.add("mail.smarthost.username", "invalid: use at most 256 printable characters")
	}
	switch {
	case len(m.Password) > maxSecretLen || strings.ContainsFunc(m.Password, isControl):
		problems.add("mail.smarthost.password", "invalid: use at most %d printable characters", maxSecretLen)
	case m.Username != "" && m.Password == "":
		problems.add("mail.smarthost.password", "missing: a username needs its password")
	case m.Username == "" && m.Password != "":
		problems.add("mail.smarthost.username", "missing: a password needs its username")
	}
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// checkDomainName accepts a fully qualified name without the trailing dot,
// of at least two labels of letters, digits and inner hyphens (RFC 1123
// section 2.1).
func checkDomainName(name string) error {
	if name == "" {
		return errors.New("missing: give a domain name such as example.org")
	}
	labels := strings.Split(name, ".")
	if len(name) > 253 || len(labels) < 2 {
		return fmt.Errorf("got %q, want a domain name such as example.org", name)
	}
	for _, label := range labels {
		if !isLabel(label) {
			return fmt.Errorf("got %q, want labels of 1 to 63 letters, digits and inner hyphens", name)
		}
	}
	return nil
}

func isLabel(label string) bool {
	if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
		return false
	}
	for _, c := range label {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

func checkHostPort(address string) error {
	host, portText, err := net.SplitHostPort(address)
	if err != nil || host == "" {
		return fmt.Errorf("got %q, want host:port such as relay.example.org:7000", address)
	}
	port, err := strconv.Atoi(portText)
	if err != nil || port < 1 || port > 65535 {
		return fmt.Errorf("got port %q, want a number from 1 to 65535", portText)
	}
	return nil
}

// checkHost accepts an IP address or a domain name of one or more labels.
func checkHost(host string) error {
	if _, err := netip.ParseAddr(host); err == nil {
		return nil
	}
	if host == "" || len(host) > 253 {
		return fmt.Errorf("got %q, want a host name such as smtp.example.org or an IP address", host)
	}
	for _, label := range strings.Split(host, ".") {
		if !isLabel(label) {
			return fmt.Errorf("got %q, want a host name such as smtp.example.org or an IP address", host)
		}
	}
	return nil
}

func appendPathProblem(problems []Problem, field, path string) []Problem {
	if !filepath.IsAbs(path) {
		return append(problems, Problem{field, fmt.Sprintf("got %q, want an absolute path", path)})
	}
	return problems
}

// ErrUnsupportedSchema means that a Settings document has a schema_version
// that this package cannot read.
var ErrUnsupportedSchema = errors.New("unsupported schema_version")

// FieldError is a JSON document that does not decode, with the field at
// fault when there is one.
type FieldError struct {
	// Field is a dotted path such as "updates.hour", or empty when the
	// document is not valid JSON at all.
	Field string
	Err   error
}

func (e *FieldError) Error() string {
	if e.Field == "" {
		return e.Err.Error()
	}
	return "field " + e.Field + ": " + e.Err.Error()
}

func (e *FieldError) Unwrap() error { return e.Err }

// DecodeSettings parses a Settings document strictly: it rejects unknown
// fields, wrong types and trailing data with a *FieldError, an unknown
// schema version with ErrUnsupportedSchema, and invalid values with a
// *ValidationError.
func DecodeSettings(data []byte) (Settings, error) {
	var head struct {
		SchemaVersion *int `json:"schema_version"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return Settings{}, jsonError(err)
	}
	if head.SchemaVersion == nil {
		return Settings{}, &FieldError{Field: "schema_version", Err: errors.New("missing")}
	}
	if *head.SchemaVersion != SchemaVersion {
		return Settings{}, fmt.Errorf("%w: got %d, this program reads %d; update the program that reads the settings",
			ErrUnsupportedSchema, *head.SchemaVersion, SchemaVersion)
	}

	var s Settings
	if err := decodeStrict(data, &s); err != nil {
		return Settings{}, err
	}
	if err := s.Validate(); err != nil {
		return Settings{}, err
	}
	return s, nil
}

// decodeStrict decodes one JSON value into v, rejecting unknown fields and
// trailing data with a *FieldError.
func decodeStrict(data []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return &FieldError{Err: errors.New("unexpected data after the JSON value")}
	}
	return nil
}

// jsonError turns an encoding/json error into a *FieldError that names the
// field when the error does.
func jsonError(err error) error {
	var typeErr *json.UnmarshalTypeError
	if errors.As(err, &typeErr) {
		return &FieldError{Field: typeErr.Field, Err: fmt.Errorf("got a JSON %s, want %s", typeErr.Value, typeErr.Type)}
	}
	// encoding/json reports unknown fields only in its message.
	if name, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		return &FieldError{Field: strings.Trim(name, `"`), Err: errors.New("unknown field")}
	}
	return &FieldError{Err: fmt.Errorf("invalid JSON: %w", err)}
}

// SaveSettings validates s and writes it to path so that a power cut leaves
// either the old or the new file. It writes a temporary file in the same
// folder with mode 0600, syncs it, renames it over path and syncs the folder.
func SaveSettings(path string, s Settings) error {
	if err := s.Validate(); err != nil {
		return fmt.Errorf("saving settings to %s: %w", path, err)
	}
	data, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return fmt.Errorf("saving settings to %s: %w", path, err)
	}
	if err := writeFileAtomic(path, append(data, '\n')); err != nil {
		return fmt.Errorf("saving settings to %s: %w", path, err)
	}
	return nil
}

func writeFileAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	// After a successful rename the temporary name is gone, so this
	// removal only cleans up after a failure.
	defer os.Remove(tmp.Name())

	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return err
	}
	return syncDir(dir)
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// LoadSettings reads the settings that SaveSettings wrote, with the checks
// of DecodeSettings.
func LoadSettings(path string) (Settings, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return Settings{}, fmt.Errorf("loading settings: %w", err)
	}
	s, err := DecodeSettings(data)
	if err != nil {
		return Settings{}, fmt.Errorf("loading settings from %s: %w", path, err)
	}
	return s, nil
}
