package mailconfig

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/heimwolke/heimwolke/appliance/mail/auth"
	"github.com/heimwolke/heimwolke/appliance/mail/records"
)

func testOptions(t *testing.T) Options {
	t.Helper()
	params := records.Params{
		Domain:   "example.org",
		MailHost: "mail.example.org",
		DKIM:     []auth.DKIMRecord{{Selector: "hw-ed25519", Text: "v=DKIM1; k=ed25519; p=AAAA"}},
		MTASTSID: "20261205",
	}
	return Options{
		Domain:       "example.org",
		Logger:       slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug})),
		MTASTSPolicy: func() (string, error) { return records.MTASTSPolicy(params) },
	}
}

func TestAutoconfigThunderbird(t *testing.T) {
	s := startServer(t, testOptions(t))
	for _, tc := range []struct{ host, path string }{
		{"example.org", "/.well-known/autoconfig/mail/config-v1.1.xml"},
		{"autoconfig.example.org", "/mail/config-v1.1.xml"},
		{"autoconfig.example.org", "/.well-known/autoconfig/mail/config-v1.1.xml"},
	} {
		t.Run(tc.host+tc.path, func(t *testing.T) {
			res := s.request(tc.host, tc.path+"?emailaddress=Anna%2Bshop%40Example.org")
			if res.status != "200" {
				t.Fatalf("status = %s, want 200; body:\n%s", res.status, res.body)
			}
			if res.contentType != "application/xml; charset=utf-8" {
				t.Errorf("content type = %q, want application/xml; charset=utf-8", res.contentType)
			}

			var got parsedClientConfig
			python(t, clientConfigScript, res.body, &got)
			if got.Version != "1.1" {
				t.Errorf("version = %q, want 1.1", got.Version)
			}
			if !slices.Equal(got.Domains, []string{"example.org"}) {
				t.Errorf("domains = %q, want [example.org]", got.Domains)
			}
			wantIncoming := []parsedServer{
				{"imap", "mail.example.org", 993, "SSL", "anna", "password-cleartext"},
			}
			if !slices.Equal(got.Incoming, wantIncoming) {
				t.Errorf("incoming servers = %+v, want %+v", got.Incoming, wantIncoming)
			}
			wantOutgoing := []parsedServer{
				{"smtp", "mail.example.org", 465, "SSL", "anna", "password-cleartext"},
				{"smtp", "mail.example.org", 587, "STARTTLS", "anna", "password-cleartext"},
			}
			if !slices.Equal(got.Outgoing, wantOutgoing) {
				t.Errorf("outgoing servers = %+v, want %+v", got.Outgoing, wantOutgoing)
			}
		})
	}
}

func TestAutoconfigWithoutAddress(t *testing.T) {
	opts := testOptions(t)
	opts.MailHost = "box.example.org."
	opts.IMAPPort = 10993
	opts.SubmissionTLSPort = 10465
	opts.SubmissionPort = 10587
	s := startServer(t, opts)

	res := s.request("autoconfig.example.org", "/mail/config-v1.1.xml")
	if res.status != "200" {
		t.Fatalf("status = %s, want 200; body:\n%s", res.status, res.body)
	}
	var got parsedClientConfig
	python(t, clientConfigScript, res.body, &got)
	want := []parsedServer{
		{"smtp", "box.example.org", 10465, "SSL", "%EMAILLOCALPART%", "password-cleartext"},
		{"smtp", "box.example.org", 10587, "STARTTLS", "%EMAILLOCALPART%", "password-cleartext"},
	}
	if !slices.Equal(got.Outgoing, want) {
		t.Errorf("outgoing servers = %+v, want %+v", got.Outgoing, want)
	}
	if len(got.Incoming) != 1 || got.Incoming[0].Port != 10993 || got.Incoming[0].Username != "%EMAILLOCALPART%" {
		t.Errorf("incoming servers = %+v, want one on port 10993 with user %%EMAILLOCALPART%%", got.Incoming)
	}
}

func TestAutoconfigBadAddress(t *testing.T) {
	s := startServer(t, testOptions(t))
	for _, tc := range []struct {
		query      string
		wantStatus string
	}{
		{"emailaddress=anna%40other.example", "404"},
		{"emailaddress=anna", "400"},
		{"emailaddress=%40example.org", "400"},
		{"emailaddress=anna%40", "400"},
		{"emailaddress=an%20na%40example.org", "400"},
		{"emailaddress=anna%0d%0a%40example.org", "400"},
		{"emailaddress=" + strings.Repeat("a", 250) + "%40example.org", "400"},
	} {
		res := s.request("autoconfig.example.org", "/mail/config-v1.1.xml?"+tc.query)
		if res.status != tc.wantStatus {
			t.Errorf("%s: status = %s, want %s", tc.query, res.status, tc.wantStatus)
		}
	}
}

// outlookRequest is the body that Outlook sends, with the address and
// the response schema to fill in.
const outlookRequest = `<?xml version="1.0" encoding="utf-8"?>
<Autodiscover xmlns="http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006">
  <Request>
    <EMailAddress>%s</EMailAddress>
    <AcceptableResponseSchema>%s</AcceptableResponseSchema>
  </Request>
</Autodiscover>
`

// post sends body with curl as Outlook does, from a file, so that curl
// sends it byte for byte.
func (s *server) post(host, path, body string) curlResult {
	s.t.Helper()
	file := filepath.Join(s.t.TempDir(), "request.xml")
	if err := os.WriteFile(file, []byte(body), 0o600); err != nil {
		s.t.Fatal(err)
	}
	return s.request(host, path, "-H", "Content-Type: text/xml", "--data-binary", "@"+file)
}

func TestAutodiscoverOutlook(t *testing.T) {
	s := startServer(t, testOptions(t))
	body := fmt.Sprintf(outlookRequest, "Anna@example.org", outlookResponseSchema)
	for _, tc := range []struct{ host, path string }{
		{"autodiscover.example.org", "/autodiscover/autodiscover.xml"},
		{"autodiscover.example.org", "/Autodiscover/Autodiscover.xml"},
		{"example.org", "/autodiscover/autodiscover.xml"},
	} {
		t.Run(tc.host+tc.path, func(t *testing.T) {
			res := s.post(tc.host, tc.path, body)
			if res.status != "200" {
				t.Fatalf("status = %s, want 200; body:\n%s", res.status, res.body)
			}
			if res.contentType != "text/xml; charset=utf-8" {
				t.Errorf("content type = %q, want text/xml; charset=utf-8", res.contentType)
			}

			var got parsedAutodiscover
			python(t, autodiscoverScript, res.body, &got)
			if got.AccountType != "email" || got.Action != "settings" {
				t.Errorf("account type, action = %q, %q; want email, settings", got.AccountType, got.Action)
			}
			common := map[string]string{
				"Server": "mail.example.org", "LoginName": "anna", "DomainRequired": "off",
				"SPA": "off", "SSL": "on", "Encryption": "SSL", "AuthRequired": "on",
			}
			want := []map[string]string{
				withFields(common, "Type", "IMAP", "Port", "993"),
				withFields(common, "Type", "SMTP", "Port", "465"),
			}
			if fmt.Sprint(got.Protocols) != fmt.Sprint(want) {
				t.Errorf("protocols =\n%v\nwant\n%v", got.Protocols, want)
			}
		})
	}
}

func withFields(m map[string]string, keyValues ...string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i+1 < len(keyValues); i += 2 {
		out[keyValues[i]] = keyValues[i+1]
	}
	return out
}

func TestAutodiscoverGet(t *testing.T) {
	s := startServer(t, testOptions(t))
	res := s.request("autodiscover.example.org", "/autodiscover/autodiscover.xml")
	if res.status != "200" {
		t.Fatalf("status = %s, want 200", res.status)
	}
	var got parsedAutodiscover
	python(t, autodiscoverScript, res.body, &got)
	if got.ErrorCode != 600 || got.ErrorMessage != "Invalid Request" {
		t.Errorf("error = %d %q, want 600 \"Invalid Request\"", got.ErrorCode, got.ErrorMessage)
	}

	// With --head, curl writes the response headers in place of a body.
	head := s.request("autodiscover.example.org", "/autodiscover/autodiscover.xml", "--head")
	if head.status != "200" {
		t.Errorf("HEAD: status = %s, want 200", head.status)
	}
	if strings.Contains(string(head.body), "<Autodiscover") {
		t.Errorf("HEAD: output = %q, want headers only", head.body)
	}
}

// TestAutodiscoverBadInput guards against a request body that is too
// large, malformed or that declares entities reaching a parser that would
// expand them.
func TestAutodiscoverBadInput(t *testing.T) {
	s := startServer(t, testOptions(t))
	const path = "/autodiscover/autodiscover.xml"
	valid := fmt.Sprintf(outlookRequest, "anna@example.org", outlookResponseSchema)
	for _, tc := range []struct {
		name       string
		body       string
		wantStatus string
		wantCode   int
	}{
		{"oversize", strings.Replace(valid, "<Request>", "<Request>"+strings.Repeat(" ", maxAutodiscoverBody), 1), "413", 0},
		{"malformed", "<Autodiscover><Request>", "400", 600},
		{"not xml", "EMailAddress=anna@example.org", "400", 600},
		{"empty", "", "400", 600},
		{"internal entity", `<?xml version="1.0"?>
<!DOCTYPE Autodiscover [<!ENTITY a "anna@example.org">]>` + strings.Replace(valid[strings.Index(valid, "\n")+1:], "anna@example.org", "&a;", 1), "400", 600},
		{"external entity", `<?xml version="1.0"?>
<!DOCTYPE Autodiscover [<!ENTITY a SYSTEM "file:///etc/passwd">]>` + strings.Replace(valid[strings.Index(valid, "\n")+1:], "anna@example.org", "&a;", 1), "400", 600},
		{"billion laughs", `<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">]>
<Autodiscover xmlns="` + autodiscoverRequestNS + `"><Request><EMailAddress>&lol2;</EMailAddress></Request></Autodiscover>`, "400", 600},
		{"undeclared entity", strings.Replace(valid, "anna@example.org", "&a;", 1), "400", 600},
		{"wrong namespace", strings.Replace(valid, "requestschema/2006", "requestschema/2099", 1), "400", 600},
		{"missing address", fmt.Sprintf(outlookRequest, "", outlookResponseSchema), "400", 600},
		{"other domain", fmt.Sprintf(outlookRequest, "anna@other.example", outlookResponseSchema), "404", 500},
		{"mobilesync schema", fmt.Sprintf(outlookRequest, "anna@example.org", "http://schemas.microsoft.com/exchange/autodiscover/mobilesync/responseschema/2006"), "200", 601},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := s.post("autodiscover.example.org", path, tc.body)
			if res.status != tc.wantStatus {
				t.Fatalf("status = %s, want %s; body:\n%s", res.status, tc.wantStatus, res.body)
			}
			if tc.wantCode == 0 {
				return
			}
			var got parsedAutodiscover
			python(t, autodiscoverScript, res.body, &got)
			if got.ErrorCode != tc.wantCode {
				t.Errorf("error code = %d, want %d", got.ErrorCode, tc.wantCode)
			}
			if len(got.Protocols) != 0 {
				t.Errorf("protocols = %v, want none", got.Protocols)
			}
		})
	}
}

func TestMTASTSPolicyServed(t *testing.T) {
	s := startServer(t, testOptions(t))
	res := s.request("mta-sts.example.org", "/.well-known/mta-sts.txt")
	if res.status != "200" {
		t.Fatalf("status = %s, want 200; body:\n%s", res.status, res.body)
	}
	// RFC 8461 section 3.3 requires the media type text/plain.
	if res.contentType != "text/plain" {
		t.Errorf("content type = %q, want text/plain", res.contentType)
	}

	var got parsedPolicy
	python(t, mtaSTSScript, res.body, &got)
	want := parsedPolicy{Version: "STSv1", Mode: "testing", MX: []string{"mail.example.org"}, MaxAge: 604800}
	if got.Version != want.Version || got.Mode != want.Mode || !slices.Equal(got.MX, want.MX) || got.MaxAge != want.MaxAge {
		t.Errorf("policy = %+v, want %+v", got, want)
	}
}

// TestHTTPSOnEveryHost checks that a certificate for Hosts covers every
// request that Match accepts, which curl verifies by name.
func TestHTTPSOnEveryHost(t *testing.T) {
	s := startTLSServer(t, testOptions(t))
	for _, tc := range []struct{ host, path, wantType string }{
		{"example.org", "/.well-known/autoconfig/mail/config-v1.1.xml", "application/xml; charset=utf-8"},
		{"autoconfig.example.org", "/mail/config-v1.1.xml", "application/xml; charset=utf-8"},
		{"autodiscover.example.org", "/autodiscover/autodiscover.xml", "text/xml; charset=utf-8"},
		{"mta-sts.example.org", "/.well-known/mta-sts.txt", "text/plain"},
	} {
		res := s.request(tc.host, tc.path)
		if res.status != "200" {
			t.Errorf("GET https://%s%s: status = %s, want 200", tc.host, tc.path, res.status)
		}
		if res.contentType != tc.wantType {
			t.Errorf("GET https://%s%s: content type = %q, want %q", tc.host, tc.path, res.contentType, tc.wantType)
		}
	}
}

func TestMTASTSPolicyError(t *testing.T) {
	opts := testOptions(t)
	opts.MTASTSPolicy = func() (string, error) { return "", errors.New("no MTA-STS id yet") }
	s := startServer(t, opts)
	res := s.request("mta-sts.example.org", "/.well-known/mta-sts.txt")
	if res.status != "503" {
		t.Errorf("status = %s, want 503", res.status)
	}
	if strings.Contains(string(res.body), "no MTA-STS id yet") {
		t.Errorf("body = %q, want no internal error text", res.body)
	}
}

func TestMethodsNotAllowed(t *testing.T) {
	s := startServer(t, testOptions(t))
	for _, tc := range []struct {
		method, host, path, wantAllow string
	}{
		{"POST", "autoconfig.example.org", "/mail/config-v1.1.xml", "GET, HEAD"},
		{"PUT", "example.org", "/.well-known/autoconfig/mail/config-v1.1.xml", "GET, HEAD"},
		{"PUT", "autodiscover.example.org", "/autodiscover/autodiscover.xml", "GET, HEAD, POST"},
		{"DELETE", "autodiscover.example.org", "/autodiscover/autodiscover.xml", "GET, HEAD, POST"},
		{"OPTIONS", "mta-sts.example.org", "/.well-known/mta-sts.txt", "GET, HEAD"},
		{"POST", "mta-sts.example.org", "/.well-known/mta-sts.txt", "GET, HEAD"},
	} {
		res := s.request(tc.host, tc.path, "-X", tc.method)
		if res.status != "405" {
			t.Errorf("%s %s%s: status = %s, want 405", tc.method, tc.host, tc.path, res.status)
		}
		if res.allow != tc.wantAllow {
			t.Errorf("%s %s%s: Allow = %q, want %q", tc.method, tc.host, tc.path, res.allow, tc.wantAllow)
		}
	}
}

func TestOtherHostsNotServed(t *testing.T) {
	s := startServer(t, testOptions(t))
	for _, tc := range []struct{ host, path string }{
		{"example.org", "/mail/config-v1.1.xml"},
		{"example.org", "/.well-known/mta-sts.txt"},
		{"autoconfig.example.org", "/autodiscover/autodiscover.xml"},
		{"mta-sts.example.org", "/mail/config-v1.1.xml"},
		{"mail.example.org", "/.well-known/autoconfig/mail/config-v1.1.xml"},
		{"autoconfig.other.example", "/mail/config-v1.1.xml"},
	} {
		res := s.request(tc.host, tc.path)
		if res.status != "404" {
			t.Errorf("GET %s%s: status = %s, want 404", tc.host, tc.path, res.status)
		}
	}
}

func TestMatch(t *testing.T) {
	h, err := New(testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		host, target string
		want         bool
	}{
		{"example.org", "/.well-known/autoconfig/mail/config-v1.1.xml?emailaddress=a%40example.org", true},
		{"Example.ORG.", "/.well-known/autoconfig/mail/config-v1.1.xml", true},
		{"autoconfig.example.org:443", "/mail/config-v1.1.xml", true},
		{"autoconfig.example.org", "/.well-known/autoconfig/mail/config-v1.1.xml", true},
		{"autodiscover.example.org", "/AutoDiscover/AutoDiscover.xml", true},
		{"example.org:8443", "/autodiscover/autodiscover.xml", true},
		{"mta-sts.example.org", "/.well-known/mta-sts.txt", true},

		{"example.org", "/mail/config-v1.1.xml", false},
		{"example.org", "/.well-known/mta-sts.txt", false},
		{"mta-sts.example.org", "/.well-known/acme-challenge/token", false},
		{"autoconfig.example.org", "/", false},
		{"autodiscover.example.org", "/autodiscover/autodiscover.json", false},
		{"www.example.org", "/.well-known/autoconfig/mail/config-v1.1.xml", false},
		{"autoconfig.example.org.evil.example", "/mail/config-v1.1.xml", false},
	} {
		r := httptest.NewRequest(http.MethodGet, "http://placeholder"+tc.target, nil)
		r.Host = tc.host
		if got := h.Match(r); got != tc.want {
			t.Errorf("Match(%s%s) = %v, want %v", tc.host, tc.target, got, tc.want)
		}
	}
}

func TestHosts(t *testing.T) {
	h, err := New(testOptions(t))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"example.org", "autoconfig.example.org", "autodiscover.example.org", "mta-sts.example.org"}
	if got := h.Hosts(); !slices.Equal(got, want) {
		t.Errorf("Hosts() = %q, want %q", got, want)
	}

	withoutPolicy, err := New(Options{Domain: "Example.org"})
	if err != nil {
		t.Fatal(err)
	}
	want = []string{"example.org", "autoconfig.example.org", "autodiscover.example.org"}
	if got := withoutPolicy.Hosts(); !slices.Equal(got, want) {
		t.Errorf("Hosts() without a policy = %q, want %q", got, want)
	}
	r := httptest.NewRequest(http.MethodGet, "http://mta-sts.example.org/.well-known/mta-sts.txt", nil)
	if withoutPolicy.Match(r) {
		t.Errorf("Match(mta-sts.example.org/.well-known/mta-sts.txt) without a policy = true, want false")
	}
}

func TestNewInvalidOptions(t *testing.T) {
	for _, tc := range []struct {
		name    string
		opts    Options
		wantErr string
	}{
		{"missing domain", Options{}, `invalid domain ""`},
		{"trailing dot", Options{Domain: "example.org."}, `invalid domain "example.org."`},
		{"one label", Options{Domain: "localhost"}, `invalid domain "localhost"`},
		{"unicode", Options{Domain: "müller.example"}, `invalid domain "müller.example"`},
		{"bad mail host", Options{Domain: "example.org", MailHost: "mail example.org"}, `invalid mail host "mail example.org"`},
		{"bad port", Options{Domain: "example.org", IMAPPort: 70000}, "invalid IMAP port 70000"},
		{"negative port", Options{Domain: "example.org", SubmissionPort: -1}, "invalid submission port -1"},
	} {
		_, err := New(tc.opts)
		if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
			t.Errorf("%s: New error = %v, want one containing %q", tc.name, err, tc.wantErr)
		}
	}
}
