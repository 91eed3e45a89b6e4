package control

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
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
	// Domain is the household's domain, for example "example.org".
	Domain string `json:"domain"`
	// Language is the language of the agent's notices: "de" or "en".
	Language string         `json:"language"`
	DNS      DNSSettings    `json:"dns"`
	ACME     ACMESettings   `json:"acme"`
	Updates  UpdateSettings `json:"updates"`
	Relay    RelaySettings  `json:"relay"`
}

// DNSSettings configures dynamic DNS.
type DNSSettings struct {
	// Provider names the dynamic DNS provider in lowercase letters, digits
	// and hyphens. Empty means that the household keeps DNS up to date
	// itself.
	Provider string `json:"provider,omitempty"`
	// Hostname is the name that the agent points at the box's addresses.
	// It is required with a provider.
	Hostname string `json:"hostname,omitempty"`
	// Token is the provider's API token: a secret that LogValue hides.
	Token string `json:"token,omitempty"`
}

// ACMESettings configures certificates.
type ACMESettings struct {
	// Email is the contact address that the certificate authority receives.
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

// LogValue hides the DNS token when settings are logged.
func (s Settings) LogValue() slog.Value {
	if s.DNS.Token != "" {
		s.DNS.Token = "(hidden)"
	}
	type plain Settings // without the LogValue method, to avoid recursion
	return slog.AnyValue(plain(s))
}

var providerPattern = regexp.MustCompile(`^[a-z0-9][a-z0-9-]{0,31}$`)

// Validate reports every invalid field of s, with a hint for each.
func (s Settings) Validate() error {
	var problems []Problem
	add := func(field, format string, args ...any) {
		problems = append(problems, Problem{field, fmt.Sprintf(format, args...)})
	}

	if s.SchemaVersion != SchemaVersion {
		add("schema_version", "got %d, want %d", s.SchemaVersion, SchemaVersion)
	}
	if err := checkDomainName(s.Domain); err != nil {
		add("domain", "%v", err)
	}
	if s.Language != "de" && s.Language != "en" {
		add("language", "got %q, want \"de\" or \"en\"", s.Language)
	}

	if s.DNS.Provider != "" {
		if !providerPattern.MatchString(s.DNS.Provider) {
			add("dns.provider", "got %q, want up to 32 lowercase letters, digits and hyphens", s.DNS.Provider)
		}
		if err := checkDomainName(s.DNS.Hostname); err != nil {
			add("dns.hostname", "%v", err)
		}
	}
	if len(s.DNS.Token) > 4096 || strings.ContainsFunc(s.DNS.Token, isControl) {
		add("dns.token", "invalid: use at most 4096 printable characters")
	}

	if addr, err := mail.ParseAddress(s.ACME.Email); err != nil || addr.Address != s.ACME.Email {
		add("acme.email", "got %q, want a plain address such as name@example.org", s.ACME.Email)
	}
	if s.ACME.DirectoryURL != "" {
		if u, err := url.Parse(s.ACME.DirectoryURL); err != nil || u.Scheme != "https" || u.Host == "" {
			add("acme.directory_url", "got %q, want an https URL or nothing for the default", s.ACME.DirectoryURL)
		}
	}

	if s.Updates.Channel != "stable" && s.Updates.Channel != "testing" {
		add("updates.channel", "got %q, want \"stable\" or \"testing\"", s.Updates.Channel)
	}
	if s.Updates.Hour < 0 || s.Updates.Hour > 23 {
		add("updates.hour", "got %d, want an hour from 0 to 23", s.Updates.Hour)
	}

	if s.Relay.Enabled {
		if err := checkHostPort(s.Relay.Address); err != nil {
			add("relay.address", "%v", err)
		}
	}
	return newValidationError(problems)
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
