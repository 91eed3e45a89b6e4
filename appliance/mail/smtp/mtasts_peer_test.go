package smtp

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/appliance/mail/queue"
	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// mtaSTSEnv starts Postfix as the MX of remote.test and an HTTPS server
// that serves policy as https://mta-sts.remote.test/.well-known/mta-sts.txt.
func mtaSTSEnv(t *testing.T, policy string, postfixCert, mxCertTrusted bool) (*testEnv, *postfix) {
	mxCert := testpeer.SelfSigned(t, "mx.remote.test", "127.0.0.1")
	opts := postfixOptions{}
	if postfixCert {
		opts.cert = mxCert
	}
	p := startPostfix(t, opts)

	web := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Host != "mta-sts.remote.test" || r.URL.Path != "/.well-known/mta-sts.txt" {
			http.NotFound(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/plain")
		w.Write([]byte(policy))
	}))
	webCert := testpeer.SelfSigned(t, "mta-sts.remote.test", "127.0.0.1")
	web.TLS = webCert.ServerConfig()
	web.StartTLS()
	t.Cleanup(web.Close)
	client := &http.Client{Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: webCert.Pool},
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, network, web.Listener.Addr().String())
		},
	}}

	e := newTestEnv(t, envOptions{runQueue: true, queue: func(o *queue.Options) {
		o.MXPort = p.port
		o.HTTPClient = client
		if mxCertTrusted {
			o.TLSConfig = &tls.Config{RootCAs: mxCert.Pool}
		}
	}})
	e.dns.add(t, "remote.test. 300 IN MX 10 mx.remote.test.", "mx.remote.test. 300 IN A 127.0.0.1")
	e.dns.addTXT(t, "_mta-sts.remote.test", "v=STSv1; id=1")
	return e, p
}

func TestMTASTSEnforce(t *testing.T) {
	const enforce = "version: STSv1\nmode: enforce\nmx: mx.remote.test\nmax_age: 86400\n"
	for _, tc := range []struct {
		name                    string
		policy                  string
		postfixTLS, certTrusted bool
		wantDelivered           bool
		wantLog                 string
	}{
		{"verified tls", enforce, true, true, true, ""},
		{"untrusted certificate", enforce, true, false, false, "does not verify"},
		{"no starttls", enforce, false, true, false, "offers no STARTTLS"},
		{"mx not in policy", strings.Replace(enforce, "mx.remote.test", "*.other.test", 1), true, true, false, "not listed in the MTA-STS policy"},
		{"testing mode falls back", strings.Replace(enforce, "enforce", "testing", 1), true, false, true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e, p := mtaSTSEnv(t, tc.policy, tc.postfixTLS, tc.certTrusted)
			out, code := e.swaksSubmit(t, e.submission, "-tls", "anna", e.secret, "anna@example.test", "friend@remote.test")
			if code != 0 {
				t.Fatalf("swaks exit code %d:\n%s", code, out)
			}
			if tc.wantDelivered {
				waitFor(t, 30*time.Second, "delivery", func() bool { return len(p.received("friend")) == 1 })
				return
			}
			waitFor(t, 30*time.Second, "a deferred attempt", func() bool {
				entries, _ := e.queue.Entries(context.Background())
				return len(entries) == 1 && entries[0].Attempts >= 1
			})
			entries, _ := e.queue.Entries(context.Background())
			if !strings.Contains(entries[0].LastError, tc.wantLog) {
				t.Errorf("last error %q does not contain %q", entries[0].LastError, tc.wantLog)
			}
			if n := len(p.received("friend")); n != 0 {
				t.Errorf("postfix received %d messages against the policy, want 0", n)
			}
		})
	}
}
