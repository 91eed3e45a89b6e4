package boxtest

import (
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/image/qemu"
)

// boxBrowser is a minimal HTTP client for the box's web interface: it keeps
// cookies, does not follow redirects, and takes the CSRF token from the last
// page it got, as a browser submitting the page's form would.
type boxBrowser struct {
	t      *testing.T
	base   string
	client *http.Client
	last   string
}

func newBoxBrowser(t *testing.T, vm *qemu.VM) *boxBrowser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &boxBrowser{
		t:    t,
		base: "http://" + vm.Addr(80),
		client: &http.Client{
			Jar:           jar,
			Timeout:       30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

func (b *boxBrowser) do(req *http.Request) (int, string, string) {
	b.t.Helper()
	req.Header.Set("Accept-Language", "de-DE,de;q=0.9")
	resp, err := b.client.Do(req)
	if err != nil {
		b.t.Fatalf("%s %s: %v", req.Method, req.URL.Path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		b.t.Fatalf("%s %s: reading the body: %v", req.Method, req.URL.Path, err)
	}
	b.last = string(body)
	return resp.StatusCode, resp.Header.Get("Location"), b.last
}

func (b *boxBrowser) get(path string) (int, string, string) {
	b.t.Helper()
	req, err := http.NewRequest("GET", b.base+path, nil)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.do(req)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// submit gets page and posts pairs (name, value, ...) with the page's CSRF
// token to action, and fails unless the box redirects to next.
func (b *boxBrowser) submit(page, action, next string, pairs ...string) {
	b.t.Helper()
	if status, _, body := b.get(page); status != http.StatusOK {
		b.t.Fatalf("GET %s: status %d, want 200:\n%s", page, status, body)
	}
	form := url.Values{}
	if m := csrfField.FindStringSubmatch(b.last); m != nil {
		form.Set("csrf", m[1])
	}
	for i := 0; i+1 < len(pairs); i += 2 {
		form.Add(pairs[i], pairs[i+1])
	}
	req, err := http.NewRequest("POST", b.base+action, strings.NewReader(form.Encode()))
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	status, location, body := b.do(req)
	if status != http.StatusSeeOther || location != next {
		b.t.Fatalf("POST %s: status %d to %q, want 303 to %q:\n%s", action, status, location, next, body)
	}
}

// walkWizardOnBox sets the booted box up as a household without a domain:
// the setup code, German, the owner, no further members, direct mail, the
// calendar and files, stable updates. It then applies the settings, which
// the box's own agent receives, finishes, and checks that the owner is
// logged in and that the wizard is gone.
func walkWizardOnBox(t *testing.T, vm *qemu.VM, code string) {
	t.Helper()
	const password = "Kastanienbaum-2026"
	b := newBoxBrowser(t, vm)
	b.submit("/setup/code", "/setup/code", "/setup/language", "setup_code", code)
	b.submit("/setup/language", "/setup/language", "/setup/owner", "lang", "de")
	b.submit("/setup/owner", "/setup/owner", "/setup/members",
		"name", "anna", "display_name", "Anna Müller", "password", password, "password2", password)
	b.submit("/setup/members", "/setup/members", "/setup/domain", "action", "next")
	b.submit("/setup/domain", "/setup/domain", "/setup/router", "domain_mode", "none")
	b.submit("/setup/router", "/setup/router", "/setup/mail")
	b.submit("/setup/mail", "/setup/mail", "/setup/services", "mail_mode", "direct")
	b.submit("/setup/services", "/setup/services", "/setup/updates",
		"service_calendar_contacts", "on", "service_files", "on")
	b.submit("/setup/updates", "/setup/updates", "/setup/summary", "channel", "stable", "hour", "4")
	b.submit("/setup/summary", "/setup/apply", "/setup/progress")

	// The box's agent takes the settings over its control socket; until it
	// has them, the progress page offers no way to finish.
	deadline := time.Now().Add(2 * time.Minute)
	for {
		_, _, body := b.get("/setup/progress.json")
		if strings.Contains(body, `"can_finish":true`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the progress page did not allow finishing within 2 minutes; last report:\n%s", body)
		}
		time.Sleep(time.Second)
	}
	b.submit("/setup/progress", "/setup/finish", "/account?notice=setup_done")

	if status, _, body := b.get("/account"); status != http.StatusOK || !strings.Contains(body, "Anna Müller") {
		t.Errorf("GET /account after setup: status %d, want 200 with the owner's name:\n%s", status, body)
	}
	// The wizard is gone for good: its pages now lead elsewhere.
	if status, location, _ := b.get("/setup/language"); status == http.StatusOK {
		t.Errorf("GET /setup/language after setup: status 200, want the wizard gone (got Location %q)", location)
	}
}
