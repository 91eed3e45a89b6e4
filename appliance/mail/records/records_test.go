package records

import (
	"strings"
	"testing"

	"github.com/emersion/go-msgauth/dmarc"
	"github.com/miekg/dns"

	"github.com/heimwolke/heimwolke/appliance/mail/auth"
)

func testParams(t *testing.T) Params {
	keys, err := auth.LoadOrCreateKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return Params{
		Domain:        "example.org",
		MailHost:      "box.example.org",
		DKIM:          keys.Records(),
		ReportAddress: "postmaster@example.org",
		MTASTSID:      "20261204",
	}
}

func TestRecordsList(t *testing.T) {
	recs, err := Records(testParams(t))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range recs {
		rr := r.RR()
		got[rr.Type+" "+rr.Name] = rr.Data
	}
	want := map[string]string{
		"MX @":                      "10 box.example.org.",
		"TXT @":                     "v=spf1 mx -all",
		"TXT _dmarc":                "v=DMARC1; p=quarantine; adkim=r; aspf=r; rua=mailto:postmaster@example.org",
		"TXT _mta-sts":              "v=STSv1; id=20261204",
		"CNAME mta-sts":             "box.example.org.",
		"TXT _smtp._tls":            "v=TLSRPTv1; rua=mailto:postmaster@example.org",
		"CNAME autoconfig":          "box.example.org.",
		"CNAME autodiscover":        "box.example.org.",
		"SRV _submissions._tcp":     "0 1 465 box.example.org.",
		"SRV _submission._tcp":      "10 1 587 box.example.org.",
		"SRV _imaps._tcp":           "0 1 993 box.example.org.",
		"SRV _imap._tcp":            "0 0 0 .",
		"TXT hw-ed25519._domainkey": "",
		"TXT hw-rsa._domainkey":     "",
	}
	for k, v := range want {
		g, ok := got[k]
		if !ok {
			t.Errorf("record %s missing", k)
			continue
		}
		if v != "" && g != v {
			t.Errorf("record %s = %q, want %q", k, g, v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("got %d records, want %d: %v", len(got), len(want), got)
	}
}

// TestRecordsParse checks each TXT value with an independent parser: DMARC
// with go-msgauth, and every record as zone-file text with miekg/dns.
func TestRecordsParse(t *testing.T) {
	recs, err := Records(testParams(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		rr := r.RR()
		if rr.Name == "_dmarc" {
			if _, err := dmarc.Parse(rr.Data); err != nil {
				t.Errorf("dmarc.Parse(%q): %v", rr.Data, err)
			}
		}
		data := rr.Data
		if rr.Type == "TXT" {
			data = quoteTXT(data)
		}
		line := rr.Name + ".example.org. 3600 IN " + rr.Type + " " + data
		if rr.Name == "@" {
			line = "example.org. 3600 IN " + rr.Type + " " + data
		}
		if _, err := dns.NewRR(line); err != nil {
			t.Errorf("dns.NewRR(%q): %v", line, err)
		}
	}
}

// quoteTXT splits a TXT value into quoted strings of at most 255 bytes (RFC
// 1035 section 3.3.14), as a provider must for the 400-byte RSA key.
func quoteTXT(s string) string {
	var parts []string
	for len(s) > 255 {
		parts = append(parts, `"`+s[:255]+`"`)
		s = s[255:]
	}
	return strings.Join(append(parts, `"`+s+`"`), " ")
}

func TestMTASTSPolicy(t *testing.T) {
	got, err := MTASTSPolicy(testParams(t))
	if err != nil {
		t.Fatal(err)
	}
	want := "version: STSv1\r\nmode: testing\r\nmx: box.example.org\r\nmax_age: 604800\r\n"
	if got != want {
		t.Errorf("MTASTSPolicy = %q, want %q", got, want)
	}
}

func TestRecordsInvalid(t *testing.T) {
	p := testParams(t)
	p.MTASTSID = "has space"
	p.Domain = "example.org."
	_, err := Records(p)
	if err == nil {
		t.Fatal("Records accepted an invalid id and domain")
	}
	for _, want := range []string{"MTA-STS id", "trailing dot"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
}
