package control

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestValidateReportsEveryProblem(t *testing.T) {
	s := Settings{
		SchemaVersion: SchemaVersion,
		Domain:        "localhost",
		Language:      "fr",
		DNS:           DNSSettings{Provider: "De Sec", Hostname: "", Token: "a\nb"},
		ACME:          ACMESettings{Email: "Admin <admin@example.org>", DirectoryURL: "http://ca.example.org/dir"},
		Updates:       UpdateSettings{Channel: "nightly", Hour: -1},
		Relay:         RelaySettings{Enabled: true, Address: "relay.example.net"},
	}
	err := s.Validate()
	var validation *ValidationError
	if !errors.As(err, &validation) {
		t.Fatalf("Validate() = %v, want *ValidationError", err)
	}
	var fields []string
	for _, p := range validation.Problems {
		fields = append(fields, p.Field)
		if p.Message == "" {
			t.Errorf("problem for %s has no message", p.Field)
		}
	}
	want := []string{"domain", "language", "dns.provider", "dns.hostname", "dns.token", "acme.email",
		"acme.directory_url", "updates.channel", "updates.hour", "relay.address"}
	if !reflect.DeepEqual(fields, want) {
		t.Errorf("problem fields: got %v, want %v", fields, want)
	}
}

func TestValidateAcceptsMinimalSettings(t *testing.T) {
	s := Settings{
		SchemaVersion: SchemaVersion,
		Domain:        "example.org",
		Language:      "en",
		ACME:          ACMESettings{Email: "me@example.org"},
		Updates:       UpdateSettings{Channel: "stable"},
	}
	if err := s.Validate(); err != nil {
		t.Errorf("Validate() of settings without DNS provider and relay = %v, want nil", err)
	}
}

func TestSettingsLogValueHidesToken(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(slog.NewTextHandler(&buf, nil))
	log.Info("settings stored", "settings", validSettings())
	if strings.Contains(buf.String(), "s3cret-token") {
		t.Errorf("log line %q contains the DNS token", buf.String())
	}
	if !strings.Contains(buf.String(), "box.example.org") {
		t.Errorf("log line %q lacks the DNS host name, want the other fields kept", buf.String())
	}
}

func TestSaveSettingsReplacesFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "settings.json")
	first := validSettings()
	if err := SaveSettings(path, first); err != nil {
		t.Fatalf("SaveSettings: %v", err)
	}
	second := validSettings()
	second.Updates.Hour = 4
	if err := SaveSettings(path, second); err != nil {
		t.Fatalf("SaveSettings over an existing file: %v", err)
	}
	got, err := LoadSettings(path)
	if err != nil {
		t.Fatalf("LoadSettings: %v", err)
	}
	if got.Updates.Hour != 4 {
		t.Errorf("stored hour: got %d, want 4", got.Updates.Hour)
	}
	info, _ := os.Stat(path)
	if info.Mode().Perm() != 0o600 {
		t.Errorf("file mode: got %o, want 600", info.Mode().Perm())
	}
}

func TestSaveSettingsRejectsInvalid(t *testing.T) {
	path := filepath.Join(t.TempDir(), "settings.json")
	s := validSettings()
	s.Language = ""
	if err := SaveSettings(path, s); err == nil {
		t.Fatal("SaveSettings of invalid settings = nil, want an error")
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("settings file after a rejected save: got %v, want it missing", err)
	}
}

func TestLoadSettingsRejectsNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "settings.json")
	os.WriteFile(path, []byte(`{"schema_version": 9}`), 0o600)
	if _, err := LoadSettings(path); !errors.Is(err, ErrUnsupportedSchema) {
		t.Errorf("LoadSettings of schema_version 9: got %v, want ErrUnsupportedSchema", err)
	}
}

// FuzzDecodeSettings checks that DecodeSettings never panics and that what
// it accepts encodes and decodes to the same settings.
func FuzzDecodeSettings(f *testing.F) {
	valid, _ := json.Marshal(validSettings())
	f.Add(valid)
	full, _ := json.Marshal(fullSettings())
	f.Add(full)
	f.Add([]byte(`{"schema_version":1,"updates":{"hour":"x"}}`))
	f.Add([]byte(`{"schema_version":2}`))
	f.Add([]byte(`{"schema_version":1}{}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := DecodeSettings(data)
		if err != nil {
			return
		}
		again, err := json.Marshal(s)
		if err != nil {
			t.Fatalf("encoding accepted settings: %v", err)
		}
		s2, err := DecodeSettings(again)
		if err != nil || !reflect.DeepEqual(s, s2) {
			t.Errorf("round trip of accepted settings: got %+v, %v; want %+v", s2, err, s)
		}
	})
}

// fullSettings uses every field that the setup wizard sets.
func fullSettings() Settings {
	return Settings{
		SchemaVersion: SchemaVersion,
		Domain:        "example.org",
		Language:      "en",
		DNS: DNSSettings{Provider: DNSRFC2136, Hostname: "example.org", RFC2136: &RFC2136Settings{
			Server: "ns1.example.net:53", Zone: "example.org", KeyName: "heimwolke_key.",
			Algorithm: TSIGHMACSHA256, Secret: "c2VjcmV0LXRzaWcta2V5LWJ5dGVzLTMyLWxvbmchIQ==",
		}},
		ACME:    ACMESettings{Email: "anna@example.org"},
		Updates: UpdateSettings{Automatic: true, Channel: "testing", Hour: 4},
		Router:  RouterSettings{PortMapping: true},
		Mail: MailSettings{Smarthost: &SmarthostSettings{
			Host: "smtp.example.net", Port: 465, TLS: SmarthostImplicitTLS, Username: "anna", Password: "relay-pass-word",
		}},
		Services: ServiceSettings{Website: true, Mail: true, CalendarContacts: true, Files: true, Chat: true},
	}
}

func TestValidateAcceptsFullSettings(t *testing.T) {
	if err := fullSettings().Validate(); err != nil {
		t.Errorf("Validate() = %v, want nil", err)
	}
}

func TestValidateLANOnly(t *testing.T) {
	s := Settings{SchemaVersion: SchemaVersion, Language: "de", Updates: UpdateSettings{Channel: "stable"}}
	if err := s.Validate(); err != nil {
		t.Errorf("Validate() without domain and ACME address = %v, want nil", err)
	}
	s.DNS = DNSSettings{Provider: DNSDeSEC, Hostname: "anna.dedyn.io", Token: "t"}
	wantProblems(t, s, "dns.provider")
}

func TestValidateDNSProviders(t *testing.T) {
	tests := []struct {
		name   string
		change func(*DNSSettings)
		want   []string
	}{
		{"hetzner", func(d *DNSSettings) { *d = DNSSettings{Provider: DNSHetzner, Hostname: "example.org", Token: "abc"} }, nil},
		{"hetzner without token", func(d *DNSSettings) { *d = DNSSettings{Provider: DNSHetzner, Hostname: "example.org"} }, []string{"dns.token"}},
		{"desec without token", func(d *DNSSettings) { *d = DNSSettings{Provider: DNSDeSEC, Hostname: "anna.dedyn.io"} }, []string{"dns.token"}},
		{"rfc2136 without server block", func(d *DNSSettings) { d.RFC2136 = nil }, []string{"dns.rfc2136"}},
		{"rfc2136 broken fields", func(d *DNSSettings) {
			d.RFC2136.Server = "ns1.example.net"
			d.RFC2136.Zone = "example.com"
			d.RFC2136.KeyName = "bad key"
			d.RFC2136.Algorithm = "hmac-md5"
			d.RFC2136.Secret = "not base64!"
		}, []string{"dns.rfc2136.server", "dns.rfc2136.zone", "dns.rfc2136.key_name", "dns.rfc2136.algorithm", "dns.rfc2136.secret"}},
		{"rfc2136 block with other provider", func(d *DNSSettings) { d.Provider = DNSHetzner; d.Token = "abc" }, []string{"dns.rfc2136"}},
		{"dyndns2", func(d *DNSSettings) {
			*d = DNSSettings{Provider: DNSDynDNS2, Hostname: "example.org", DynDNS2: &DynDNS2Settings{
				UpdateURL: "https://update.example.net/nic/update", Username: "anna", Password: "pw"}}
		}, nil},
		{"dyndns2 over http with empty account", func(d *DNSSettings) {
			*d = DNSSettings{Provider: DNSDynDNS2, Hostname: "example.org", DynDNS2: &DynDNS2Settings{
				UpdateURL: "http://update.example.net/nic/update"}}
		}, []string{"dns.dyndns2.update_url", "dns.dyndns2.username", "dns.dyndns2.password"}},
		{"dyndns2 without account block", func(d *DNSSettings) {
			*d = DNSSettings{Provider: DNSDynDNS2, Hostname: "example.org"}
		}, []string{"dns.dyndns2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := fullSettings()
			tt.change(&s.DNS)
			wantProblems(t, s, tt.want...)
		})
	}
}

func TestValidateSmarthost(t *testing.T) {
	tests := []struct {
		name      string
		smarthost SmarthostSettings
		want      []string
	}{
		{"starttls without login", SmarthostSettings{Host: "192.0.2.25", Port: 587, TLS: SmarthostSTARTTLS}, nil},
		{"broken", SmarthostSettings{Host: "smtp example", Port: 0, TLS: "none"},
			[]string{"mail.smarthost.host", "mail.smarthost.port", "mail.smarthost.tls"}},
		{"username without password", SmarthostSettings{Host: "smtp.example.net", Port: 587, TLS: SmarthostSTARTTLS, Username: "anna"},
			[]string{"mail.smarthost.password"}},
		{"password without username", SmarthostSettings{Host: "smtp.example.net", Port: 587, TLS: SmarthostSTARTTLS, Password: "pw"},
			[]string{"mail.smarthost.username"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := fullSettings()
			s.Mail.Smarthost = &tt.smarthost
			wantProblems(t, s, tt.want...)
		})
	}
}

// wantProblems fails unless s.Validate reports exactly the fields want.
func wantProblems(t *testing.T, s Settings, want ...string) {
	t.Helper()
	err := s.Validate()
	var validation *ValidationError
	if len(want) == 0 {
		if err != nil {
			t.Errorf("Validate() = %v, want nil", err)
		}
		return
	}
	if !errors.As(err, &validation) {
		t.Fatalf("Validate() = %v, want problems with %v", err, want)
	}
	var fields []string
	for _, p := range validation.Problems {
		fields = append(fields, p.Field)
	}
	if !reflect.DeepEqual(fields, want) {
		t.Errorf("problem fields: got %v, want %v (%v)", fields, want, err)
	}
}

// TestSettingsLogValueHidesEverySecret also guards against LogValue
// overwriting the secrets in the caller's structs, which the pointers of
// DNSSettings and MailSettings would share with the logged copy.
func TestSettingsLogValueHidesEverySecret(t *testing.T) {
	s := fullSettings()
	s.DNS.DynDNS2 = &DynDNS2Settings{Password: "dyndns-pass-word"}
	s.DNS.Token = "dns-api-token"
	var buf bytes.Buffer
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("settings", "settings", s)

	for _, secret := range []string{s.DNS.RFC2136.Secret, "dyndns-pass-word", "dns-api-token", "relay-pass-word"} {
		if strings.Contains(buf.String(), secret) {
			t.Errorf("log line contains the secret %q: %s", secret, buf.String())
		}
	}
	if !strings.Contains(buf.String(), "smtp.example.net") {
		t.Errorf("log line %q lacks the smarthost, want the other fields kept", buf.String())
	}
	if s.Mail.Smarthost.Password != "relay-pass-word" || s.DNS.DynDNS2.Password != "dyndns-pass-word" {
		t.Errorf("logging changed the caller's secrets: smarthost %q, dyndns2 %q", s.Mail.Smarthost.Password, s.DNS.DynDNS2.Password)
	}
}

func TestServicePorts(t *testing.T) {
	numbers := func(ports []Port) []int {
		var n []int
		for _, p := range ports {
			n = append(n, p.Number)
		}
		return n
	}
	all := ServiceSettings{Website: true, Mail: true, CalendarContacts: true, Files: true, Chat: true}
	if got, want := numbers(all.Ports()), []int{25, 80, 443, 465, 587, 993, 5222, 5223, 5269}; !reflect.DeepEqual(got, want) {
		t.Errorf("ports of every service: got %v, want %v", got, want)
	}
	if got, want := numbers(ServiceSettings{Files: true}.Ports()), []int{80, 443}; !reflect.DeepEqual(got, want) {
		t.Errorf("ports of files alone: got %v, want %v", got, want)
	}
}

// TestDecodeSettingsBeforeRouterMailServices guards the schema version: a
// document written before the router, mail and services fields existed
// still decodes, with those turned off.
func TestDecodeSettingsBeforeRouterMailServices(t *testing.T) {
	doc := `{"schema_version":1,"domain":"example.org","language":"de",
		"dns":{"provider":"desec","hostname":"example.org","token":"t"},
		"acme":{"email":"anna@example.org"},"updates":{"automatic":true,"channel":"stable","hour":3},
		"relay":{"enabled":false}}`
	s, err := DecodeSettings([]byte(doc))
	if err != nil {
		t.Fatalf("DecodeSettings: %v", err)
	}
	if s.Router.PortMapping || s.Mail.Smarthost != nil || s.Services != (ServiceSettings{}) {
		t.Errorf("new fields of an old document: got %+v %+v %+v, want zero", s.Router, s.Mail, s.Services)
	}
}

func TestInZone(t *testing.T) {
	tests := []struct {
		name, zone string
		want       bool
	}{
		{"example.org", "example.org", true},
		{"box.Example.org", "example.ORG", true},
		{"badexample.org", "example.org", false},
		{"example.org", "box.example.org", false},
	}
	for _, tt := range tests {
		if got := InZone(tt.name, tt.zone); got != tt.want {
			t.Errorf("InZone(%q, %q) = %v, want %v", tt.name, tt.zone, got, tt.want)
		}
	}
}
