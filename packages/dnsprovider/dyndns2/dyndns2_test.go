package dyndns2

import (
	"context"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/libdns/libdns"
)

// fakeProvider is an /nic/update endpoint written from the dynDNS2
// descriptions of deSEC and No-IP. It returns the code in reply for every
// request with the right Basic auth and records the queries.
type fakeProvider struct {
	mu      sync.Mutex
	queries []url.Values
	agents  []string
	reply   string
	status  int
	header  http.Header
}

func (f *fakeProvider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	user, pass, ok := r.BasicAuth()
	if !ok || user != "home.example.test" || pass != "s3cret-token" {
		w.WriteHeader(http.StatusUnauthorized)
		w.Write([]byte("badauth\n"))
		return
	}
	f.queries = append(f.queries, r.URL.Query())
	f.agents = append(f.agents, r.UserAgent())
	for k, v := range f.header {
		w.Header()[k] = v
	}
	if f.status != 0 {
		w.WriteHeader(f.status)
	}
	w.Write([]byte(f.reply))
}

func start(t *testing.T, f *fakeProvider) *Provider {
	t.Helper()
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return &Provider{Endpoint: srv.URL + "/nic/update", Username: "home.example.test", Password: "s3cret-token", UserAgent: "heimwolke-test/1"}
}

var (
	v4 = netip.MustParseAddr("192.0.2.10")
	v6 = netip.MustParseAddr("2001:db8::10")
)

func TestUpdateReturnCodes(t *testing.T) {
	tests := []struct {
		reply     string
		status    int
		wantCode  string
		wantErr   error
		retryable bool
	}{
		{reply: "good 192.0.2.10,2001:db8::10\n", wantCode: "good"},
		{reply: "nochg 192.0.2.10\n", wantCode: "nochg"},
		{reply: "badauth\n", wantErr: ErrBadAuth},
		{reply: "abuse\n", wantErr: ErrAbuse},
		{reply: "notfqdn\n"},
		{reply: "nohost\n"},
		{reply: "numhost\n"},
		{reply: "badagent\n"},
		{reply: "dnserr\n", retryable: true},
		{reply: "911\n", retryable: true},
		{reply: "<html>oops</html>", status: http.StatusBadGateway, retryable: true},
		{reply: "", status: http.StatusNotFound},
	}
	for _, tt := range tests {
		f := &fakeProvider{reply: tt.reply, status: tt.status}
		p := start(t, f)
		res, err := p.Update(t.Context(), "home.example.test", v4, v6)

		if tt.wantCode != "" {
			if err != nil {
				t.Errorf("reply %q: got error %v, want %s", tt.reply, err, tt.wantCode)
			} else if res.Code != tt.wantCode {
				t.Errorf("reply %q: got code %q, want %q", tt.reply, res.Code, tt.wantCode)
			}
			continue
		}

		var e *Error
		if !errors.As(err, &e) {
			t.Errorf("reply %q: got error %v, want an *Error", tt.reply, err)
			continue
		}
		if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
			t.Errorf("reply %q: errors.Is(%v, %v) = false, want true", tt.reply, err, tt.wantErr)
		}
		if got := e.Retryable(); got != tt.retryable {
			t.Errorf("reply %q: Retryable() = %v, want %v", tt.reply, got, tt.retryable)
		}
		if code := strings.TrimSpace(tt.reply); isReturnCode(code) && e.Code != code {
			t.Errorf("reply %q: got Code %q, want %q", tt.reply, e.Code, code)
		}
		if !strings.Contains(err.Error(), "home.example.test") {
			t.Errorf("reply %q: error %q does not name the host", tt.reply, err)
		}
	}
}

func TestUpdateRequestShape(t *testing.T) {
	f := &fakeProvider{reply: "good 192.0.2.10\n"}
	p := start(t, f)
	if _, err := p.Update(t.Context(), "home.example.test.", v4, v6); err != nil {
		t.Fatal(err)
	}
	q := f.queries[0]
	for key, want := range map[string]string{"hostname": "home.example.test", "myip": "192.0.2.10", "myipv6": "2001:db8::10"} {
		if got := q.Get(key); got != want {
			t.Errorf("got %s=%q, want %q", key, got, want)
		}
	}
	if got := f.agents[0]; got != "heimwolke-test/1" {
		t.Errorf("got User-Agent %q, want heimwolke-test/1", got)
	}

	if _, err := p.Update(t.Context(), "home.example.test", v4, netip.Addr{}); err != nil {
		t.Fatal(err)
	}
	if q := f.queries[1]; q.Has("myipv6") {
		t.Errorf("without IPv6, got myipv6=%q, want no parameter", q.Get("myipv6"))
	}
}

// TestDeSECPreserve checks that an address family left out keeps deSEC's
// record: deSEC deletes it, or sets the request's source address, when the
// parameter is missing.
func TestDeSECPreserve(t *testing.T) {
	f := &fakeProvider{reply: "good\n"}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	transport := &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return new(net.Dialer).DialContext(ctx, network, srv.Listener.Addr().String())
	}}
	p := &Provider{Endpoint: "http://update.dedyn.io/", Username: "home.example.test", Password: "s3cret-token", Client: &http.Client{Transport: transport}}

	if _, err := p.Update(t.Context(), "home.example.test", netip.Addr{}, v6); err != nil {
		t.Fatal(err)
	}
	q := f.queries[0]
	if got := q.Get("myip"); got != "preserve" {
		t.Errorf("got myip=%q, want preserve", got)
	}
	if got := q.Get("myipv6"); got != "2001:db8::10" {
		t.Errorf("got myipv6=%q, want 2001:db8::10", got)
	}
	if got := f.agents[0]; !strings.HasPrefix(got, "heimwolke/") {
		t.Errorf("got default User-Agent %q, want heimwolke/VERSION", got)
	}
}

func TestWrongPassword(t *testing.T) {
	p := start(t, &fakeProvider{reply: "good\n"})
	p.Password = "wrong-password"
	_, err := p.Update(t.Context(), "home.example.test", v4, netip.Addr{})
	if !errors.Is(err, ErrBadAuth) {
		t.Fatalf("got error %v, want ErrBadAuth", err)
	}
	if strings.Contains(err.Error(), "wrong-password") {
		t.Errorf("error %q contains the password", err)
	}
}

func TestTooManyRequests(t *testing.T) {
	f := &fakeProvider{status: http.StatusTooManyRequests, header: http.Header{"Retry-After": {"42"}}}
	_, err := start(t, f).Update(t.Context(), "home.example.test", v4, netip.Addr{})
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got error %v, want an *Error", err)
	}
	if e.RetryAfter != 42*time.Second {
		t.Errorf("got RetryAfter %v, want 42s", e.RetryAfter)
	}
	if !e.Retryable() {
		t.Errorf("Retryable() = false for HTTP 429, want true")
	}
}

func TestTimeout(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	t.Cleanup(srv.Close)
	t.Cleanup(func() { close(release) })

	p := &Provider{Endpoint: srv.URL}
	ctx, cancel := context.WithTimeout(t.Context(), 200*time.Millisecond)
	defer cancel()
	if _, err := p.Update(ctx, "home.example.test", v4, netip.Addr{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got error %v, want context.DeadlineExceeded", err)
	}
}

func TestInvalidRequests(t *testing.T) {
	tests := []struct {
		p          Provider
		host       string
		ipv4, ipv6 netip.Addr
		want       string
	}{
		{Provider{Endpoint: "ftp://x"}, "h.example", v4, netip.Addr{}, "update URL"},
		{Provider{Endpoint: "https://user:pw@x/"}, "h.example", v4, netip.Addr{}, "contains credentials"},
		{Provider{Endpoint: DeSECEndpoint}, "", v4, netip.Addr{}, "host name is empty"},
		{Provider{Endpoint: DeSECEndpoint}, "h.example", v6, netip.Addr{}, "not an IPv4 address"},
		{Provider{Endpoint: DeSECEndpoint}, "h.example", netip.Addr{}, v4, "not an IPv6 address"},
	}
	for _, tt := range tests {
		_, err := tt.p.Update(t.Context(), tt.host, tt.ipv4, tt.ipv6)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Update(%q, %v, %v) at %s: got error %v, want one containing %q", tt.host, tt.ipv4, tt.ipv6, tt.p.Endpoint, err, tt.want)
		}
		if err != nil && strings.Contains(err.Error(), ":pw@") {
			t.Errorf("error %q contains the password", err)
		}
	}
}

func TestSetRecords(t *testing.T) {
	f := &fakeProvider{reply: "good\n"}
	p := start(t, f)
	set, err := p.SetRecords(t.Context(), "example.test.", []libdns.Record{
		libdns.Address{Name: "home", TTL: time.Minute, IP: v4},
		libdns.Address{Name: "home", TTL: time.Minute, IP: v6},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(set) != 2 {
		t.Errorf("SetRecords returned %d records, want 2", len(set))
	}
	if len(f.queries) != 1 {
		t.Fatalf("got %d requests, want 1 for both families", len(f.queries))
	}
	if got := f.queries[0].Get("hostname"); got != "home.example.test" {
		t.Errorf("got hostname=%q, want home.example.test", got)
	}
}

func TestSetRecordsOtherTypes(t *testing.T) {
	f := &fakeProvider{reply: "good\n"}
	p := start(t, f)
	_, err := p.SetRecords(t.Context(), "example.test.", []libdns.Record{
		libdns.TXT{Name: "_acme-challenge", Text: "x"},
	})
	if err == nil || !strings.Contains(err.Error(), "cannot publish the TXT record") || !strings.Contains(err.Error(), "by hand") {
		t.Errorf("got error %v, want one saying the TXT record must be added by hand", err)
	}

	_, err = p.SetRecords(t.Context(), "example.test.", []libdns.Record{
		libdns.Address{Name: "home", IP: v4},
		libdns.Address{Name: "home", IP: netip.MustParseAddr("192.0.2.11")},
	})
	if err == nil || !strings.Contains(err.Error(), "more than one A record") {
		t.Errorf("got error %v, want one about two A records", err)
	}
	if len(f.queries) != 0 {
		t.Errorf("got %d requests for rejected records, want 0", len(f.queries))
	}
}

// FuzzParse checks that no response body from a provider panics the
// parser, and that only good and nochg count as success.
func FuzzParse(f *testing.F) {
	for _, body := range []string{"good 192.0.2.1\n", "nochg", "badauth\n", "911", "", "good\r\nbadauth\n", "\x00"} {
		f.Add(body, 200)
	}
	f.Fuzz(func(t *testing.T, body string, status int) {
		p := &Provider{Endpoint: DeSECEndpoint}
		res, err := p.parse("h.example", &http.Response{StatusCode: status, Header: http.Header{}}, body)
		if err == nil && res.Code != "good" && res.Code != "nochg" {
			t.Errorf("parse(%q) succeeded with code %q", body, res.Code)
		}
	})
}
