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
