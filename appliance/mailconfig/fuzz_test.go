package mailconfig

import (
	"fmt"
	"testing"
)

// FuzzParseAutodiscoverRequest checks that no request body panics the
// parser, and that every accepted request is in the request namespace.
func FuzzParseAutodiscoverRequest(f *testing.F) {
	f.Add([]byte(fmt.Sprintf(outlookRequest, "anna@example.org", outlookResponseSchema)))
	f.Add([]byte(`<!DOCTYPE a [<!ENTITY b "c">]><Autodiscover>&b;</Autodiscover>`))
	f.Add([]byte(`<Autodiscover xmlns="` + autodiscoverRequestNS + `"><Request><EMailAddress>&amp;@example.org</EMailAddress></Request></Autodiscover>`))
	f.Add([]byte("<Autodiscover><Request>"))
	f.Fuzz(func(t *testing.T, body []byte) {
		req, err := parseAutodiscoverRequest(body)
		if err != nil {
			return
		}
		if req.XMLName.Space != autodiscoverRequestNS {
			t.Errorf("accepted namespace %q, want %q", req.XMLName.Space, autodiscoverRequestNS)
		}
	})
}
