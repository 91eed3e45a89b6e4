package webui

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/heimwolke/heimwolke/packages/accounts"
	"github.com/heimwolke/heimwolke/packages/testpeer"
)

var downloadPattern = regexp.MustCompile(`href="(/account/devices/apple/profile\?id=[A-Za-z0-9_-]+)"`)

// createProfile creates a profile on the Apple page and returns the path
// of its download.
func createProfile(t *testing.T, b *browser, name string) string {
	t.Helper()
	res := b.submit("/account/devices/apple", "/account/devices/apple", form("app_name", name))
	location := res.header.Get("Location")
	if res.status != http.StatusSeeOther || !strings.HasPrefix(location, "/account/devices/apple?created=") {
		t.Fatalf("got %d to %q, want 303 to /account/devices/apple?created=…; body:\n%s", res.status, location, res.body)
	}
	page, _, _ := strings.Cut(location, "#")
	res = b.get(page)
	wantStatus(t, res, http.StatusOK)
	wantBody(t, res, "Dein Profil ist fertig", "im Klartext", "höchstens 10 Minuten")
	m := downloadPattern.FindStringSubmatch(res.body)
	if m == nil {
		t.Fatalf("page lacks the download link; body:\n%s", res.body)
	}
	// Showing the page again keeps the link.
	wantBody(t, b.get(page), m[1])
	return m[1]
}

func TestAppleProfile(t *testing.T) {
	env := setupDone(t)
	b := newBrowser(t, withDomain(t, env, testDomain), lanAddr)
	logIn(t, b, "anna", ownerPassword)
	download := createProfile(t, b, "iPhone von Anna")

	// Another member cannot take Anna's profile.
	ben := newBrowser(t, withDomain(t, env, testDomain), otherLANAddr)
	logIn(t, ben, "ben", memberPassword)
	wantStatus(t, ben.get(download), http.StatusGone)

	res := b.get(download)
	wantStatus(t, res, http.StatusOK)
	if got := res.header.Get("Content-Type"); got != "application/x-apple-aspen-config" {
		t.Errorf("Content-Type %q, want application/x-apple-aspen-config", got)
	}
	if got := res.header.Get("Content-Disposition"); got != `attachment; filename="heimwolke.mobileconfig"` {
		t.Errorf("Content-Disposition %q, want an attachment heimwolke.mobileconfig", got)
	}
	if got := res.header.Get("Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control %q, want no-store, because the profile holds a password", got)
	}
	if !strings.Contains(res.body, `<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN"`) {
		t.Error("profile lacks the plist DOCTYPE")
	}
	profile := parsePlist(t, res.body)
	checkProfile(t, profile)
	checkWithPython(t, res.body)

	// The one password in the profile opens mail and DAV, not chat.
	secret := payload(t, profile, "com.apple.mail.managed")["IncomingPassword"].(string)
	wantScopes(t, env.accounts, "anna", secret, accounts.ScopeMail|accounts.ScopeDAV)

	// The link works once, and a second profile has new UUIDs.
	res = b.get(download)
	wantStatus(t, res, http.StatusGone)
	wantBody(t, res, "Profil nicht mehr verfügbar")

	second := parsePlist(t, b.get(createProfile(t, b, "Mac von Anna")).body)
	seen := map[string]bool{}
	for _, p := range []map[string]any{profile, second} {
		for _, id := range payloadUUIDs(p) {
			if seen[id] {
				t.Errorf("PayloadUUID %s appears twice, want a new one per download", id)
			}
			seen[id] = true
		}
	}
	if got, want := second["PayloadIdentifier"], profile["PayloadIdentifier"]; got != want {
		t.Errorf("second PayloadIdentifier %q, want %q, so that it replaces the first on a device", got, want)
	}
	if secret2 := payload(t, second, "com.apple.caldav.account")["CalDAVPassword"]; secret2 == secret {
		t.Error("second profile carries the first app password, want a new one")
	}
}

// checkProfile checks the payloads of a profile for Anna on testDomain.
func checkProfile(t *testing.T, profile map[string]any) {
	t.Helper()
	wantFields(t, "profile", profile, map[string]any{
		"PayloadType":              "Configuration",
		"PayloadVersion":           int64(1),
		"PayloadIdentifier":        "de.familie-mueller.heimwolke.anna",
		"PayloadRemovalDisallowed": false,
	})
	if n := len(profile["PayloadContent"].([]any)); n != 3 {
		t.Errorf("got %d payloads, want 3", n)
	}
	for _, id := range payloadUUIDs(profile) {
		if _, err := uuid.Parse(id); err != nil {
			t.Errorf("PayloadUUID %q: %v", id, err)
		}
	}

	mail := payload(t, profile, "com.apple.mail.managed")
	secret, _ := mail["IncomingPassword"].(string)
	if secret == "" {
		t.Fatal("mail payload lacks IncomingPassword")
	}
	wantFields(t, "mail payload", mail, map[string]any{
		"EmailAccountType":                 "EmailTypeIMAP",
		"EmailAddress":                     "anna@familie-mueller.de",
		"EmailAccountName":                 "Anna Müller",
		"IncomingMailServerHostName":       "mail." + testDomain,
		"IncomingMailServerPortNumber":     int64(993),
		"IncomingMailServerUseSSL":         true,
		"IncomingMailServerAuthentication": "EmailAuthPassword",
		"IncomingMailServerUsername":       "anna",
		"OutgoingMailServerHostName":       "mail." + testDomain,
		"OutgoingMailServerPortNumber":     int64(465),
		"OutgoingMailServerUseSSL":         true,
		"OutgoingMailServerAuthentication": "EmailAuthPassword",
		"OutgoingMailServerUsername":       "anna",
		"OutgoingPassword":                 secret,
	})
	wantFields(t, "CalDAV payload", payload(t, profile, "com.apple.caldav.account"), map[string]any{
		"CalDAVHostName":     testDomain,
		"CalDAVPort":         int64(443),
		"CalDAVUseSSL":       true,
		"CalDAVPrincipalURL": "https://familie-mueller.de/dav/calendars/anna/",
		"CalDAVUsername":     "anna",
		"CalDAVPassword":     secret,
	})
	wantFields(t, "CardDAV payload", payload(t, profile, "com.apple.carddav.account"), map[string]any{
		"CardDAVHostName":     testDomain,
		"CardDAVPort":         int64(443),
		"CardDAVUseSSL":       true,
		"CardDAVPrincipalURL": "https://familie-mueller.de/dav/addressbooks/anna/",
		"CardDAVUsername":     "anna",
		"CardDAVPassword":     secret,
	})
}

func wantFields(t *testing.T, what string, dict map[string]any, want map[string]any) {
	t.Helper()
	for key, value := range want {
		if got, ok := dict[key]; !ok {
			t.Errorf("%s lacks %s", what, key)
		} else if got != value {
			t.Errorf("%s %s = %#v, want %#v", what, key, got, value)
		}
	}
}

// payload returns the payload of type typ in profile.
func payload(t *testing.T, profile map[string]any, typ string) map[string]any {
	t.Helper()
	for _, p := range profile["PayloadContent"].([]any) {
		if dict := p.(map[string]any); dict["PayloadType"] == typ {
			return dict
		}
	}
	t.Fatalf("profile lacks a payload of type %s", typ)
	return nil
}

func payloadUUIDs(profile map[string]any) []string {
	ids := []string{profile["PayloadUUID"].(string)}
	for _, p := range profile["PayloadContent"].([]any) {
		ids = append(ids, p.(map[string]any)["PayloadUUID"].(string))
	}
	return ids
}

// parsePlist parses an XML property list with encoding/xml into maps,
// slices, strings, int64 and bools.
func parsePlist(t *testing.T, doc string) map[string]any {
	t.Helper()
	dec := xml.NewDecoder(strings.NewReader(doc))
	for {
		tok, err := dec.Token()
		if err != nil {
			t.Fatalf("profile has no <plist> element: %v", err)
		}
		if start, ok := tok.(xml.StartElement); ok && start.Name.Local == "plist" {
			break
		}
	}
	v, err := parsePlistValue(dec)
	if err != nil {
		t.Fatalf("parsing profile: %v\n%s", err, doc)
	}
	dict, ok := v.(map[string]any)
	if !ok {
		t.Fatalf("profile is a %T, want a dict", v)
	}
	return dict
}

// parsePlistValue reads the next element. It returns errEndOfContainer at
// the end tag of a dict or array.
func parsePlistValue(dec *xml.Decoder) (any, error) {
	for {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		switch tok := tok.(type) {
		case xml.EndElement:
			return nil, errEndOfContainer
		case xml.StartElement:
			return parsePlistElement(dec, tok)
		}
	}
}

var errEndOfContainer = errors.New("end of container")

func parsePlistElement(dec *xml.Decoder, start xml.StartElement) (any, error) {
	switch start.Name.Local {
	case "dict":
		dict := map[string]any{}
		for {
			key, err := parsePlistValue(dec)
			if errors.Is(err, errEndOfContainer) {
				return dict, nil
			}
			if err != nil {
				return nil, err
			}
			value, err := parsePlistValue(dec)
			if err != nil {
				return nil, fmt.Errorf("value of %v: %w", key, err)
			}
			dict[key.(string)] = value
		}
	case "array":
		var list []any
		for {
			v, err := parsePlistValue(dec)
			if errors.Is(err, errEndOfContainer) {
				return list, nil
			}
			if err != nil {
				return nil, err
			}
			list = append(list, v)
		}
	case "true", "false":
		if err := dec.Skip(); err != nil {
			return nil, err
		}
		return start.Name.Local == "true", nil
	}

	var text string
	if err := dec.DecodeElement(&text, &start); err != nil {
		return nil, err
	}
	switch start.Name.Local {
	case "key", "string":
		return text, nil
	case "integer":
		return strconv.ParseInt(text, 10, 64)
	}
	return nil, fmt.Errorf("unexpected element <%s>", start.Name.Local)
}

// checkWithPython reads the profile with Python's plistlib, a reader
// written apart from this package, and compares the types it finds.
func checkWithPython(t *testing.T, doc string) {
	t.Helper()
	python := testpeer.Require(t, "python3", "python3")
	path := filepath.Join(t.TempDir(), "heimwolke.mobileconfig")
	if err := os.WriteFile(path, []byte(doc), 0o600); err != nil {
		t.Fatal(err)
	}
	script := `import json, plistlib, sys
with open(sys.argv[1], "rb") as f:
    json.dump(plistlib.load(f), sys.stdout)`
	var stderr bytes.Buffer
	cmd := exec.Command(python, "-c", script, path)
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("plistlib rejects the profile: %v\n%s", err, stderr.String())
	}

	var got map[string]any
	dec := json.NewDecoder(bytes.NewReader(out))
	dec.UseNumber()
	if err := dec.Decode(&got); err != nil && !errors.Is(err, io.EOF) {
		t.Fatalf("reading plistlib output: %v", err)
	}
	for _, p := range got["PayloadContent"].([]any) {
		dict := p.(map[string]any)
		for key, value := range dict {
			switch {
			case strings.HasSuffix(key, "Port") || strings.HasSuffix(key, "PortNumber") || key == "PayloadVersion":
				if _, ok := value.(json.Number); !ok {
					t.Errorf("plistlib reads %s %s as %T, want a number", dict["PayloadType"], key, value)
				}
			case strings.HasSuffix(key, "UseSSL"):
				if value != true {
					t.Errorf("plistlib reads %s %s as %#v, want true", dict["PayloadType"], key, value)
				}
			}
		}
	}
}
