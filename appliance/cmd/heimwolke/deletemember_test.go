package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/appliance/webui"
	"github.com/heimwolke/heimwolke/packages/accounts"
)

// deleteBox is heimwolke's web interface and DAV services in the test
// process on one HTTPS server, with the owner anna and a completed setup.
type deleteBox struct {
	url      string
	dataDir  string
	svc      *services
	accounts *accounts.Store // a second handle on the box's database
	client   *http.Client    // without cookies, for DAV and share links
}

const annaPassword = "Kastanienbaum-2026"

func newDeleteBox(t *testing.T) *deleteBox {
	t.Helper()
	ctx := context.Background()
	dir := t.TempDir()
	dataDir := filepath.Join(dir, "data")
	dbPath := filepath.Join(dataDir, "heimwolke.db")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	store, err := accounts.Open(ctx, dbPath, accounts.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { store.Close() })
	if _, err := store.CreateOwner(ctx, accounts.NewUser{Name: "anna", DisplayName: "Anna", Language: accounts.LanguageGerman, Password: annaPassword}); err != nil {
		t.Fatal(err)
	}
	setup, err := webui.OpenSetupState(ctx, dbPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := setup.MarkComplete(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	setup.Close()

	log := slog.New(slog.NewTextHandler(&testLog{t}, &slog.HandlerOptions{Level: slog.LevelInfo}))
	uiOpts := webui.Options{AgentSocket: filepath.Join(dir, "no-agent.sock"), DataDir: dataDir}
	ui, _, svc, closeStores, err := openUI(ctx, dbPath, dataDir, filepath.Join(dataDir, "www"), uiOpts, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(closeStores)
	srv := httptest.NewTLSServer(svc.httpsHandler(ui))
	t.Cleanup(srv.Close)
	return &deleteBox{url: srv.URL, dataDir: dataDir, svc: svc, accounts: store, client: srv.Client()}
}

// testLog passes heimwolke's log lines to the test log.
type testLog struct{ t *testing.T }

func (w *testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// webSession is a browser with a cookie jar, logged in on the box.
type webSession struct {
	t      *testing.T
	box    *deleteBox
	client *http.Client
	last   string // the body of the last page, for its CSRF token
}

func (b *deleteBox) logIn(t *testing.T, name, password string) *webSession {
	t.Helper()
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	client := *b.client
	client.Jar = jar
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	s := &webSession{t: t, box: b, client: &client}
	s.get("/login")
	status, location := s.post("/login", url.Values{"login_name": {name}, "login_password": {password}})
	if status != http.StatusSeeOther || location != "/account" {
		t.Fatalf("login of %s: got status %d to %q, want 303 to /account", name, status, location)
	}
	return s
}

func (s *webSession) get(path string) int {
	s.t.Helper()
	resp, err := s.client.Get(s.box.url + path)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	s.last = string(body)
	return resp.StatusCode
}

var csrfField = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// post sends form with the CSRF token of the last page and returns the
// status and the Location header.
func (s *webSession) post(path string, form url.Values) (int, string) {
	s.t.Helper()
	m := csrfField.FindStringSubmatch(s.last)
	if m == nil {
		s.t.Fatalf("no CSRF token on the page before POST %s:\n%s", path, s.last)
	}
	form.Set("csrf", m[1])
	resp, err := s.client.PostForm(s.box.url+path, form)
	if err != nil {
		s.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	s.last = string(body)
	return resp.StatusCode, resp.Header.Get("Location")
}

// addMember adds a member on /admin/people and returns an app password
// for their DAV clients.
func (s *webSession) addMember(name string) (*accounts.User, string) {
	s.t.Helper()
	s.get("/admin/people")
	status, location := s.post("/admin/people", url.Values{
		"name": {name}, "display_name": {"Ben"}, "language": {"de"},
		"password": {"Heftklammer-im-Regal"}, "password2": {"Heftklammer-im-Regal"},
	})
	if status != http.StatusSeeOther || location != "/admin/people?notice=member_added" {
		s.t.Fatalf("adding %s: got status %d to %q, want 303; page:\n%s", name, status, location, s.last)
	}
	ctx := context.Background()
	u, err := s.box.accounts.UserByName(ctx, name)
	if err != nil {
		s.t.Fatal(err)
	}
	secret, _, err := s.box.accounts.CreateAppPassword(ctx, u.ID, "laptop", accounts.ScopeDAV)
	if err != nil {
		s.t.Fatal(err)
	}
	return u, secret
}

// dav sends a DAV request with Basic auth and returns the status and body.
func (b *deleteBox) dav(t *testing.T, login, secret, method, path, body string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, b.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.SetBasicAuth(login, secret)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := b.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(data)
}

func (b *deleteBox) getStatus(t *testing.T, path string) int {
	t.Helper()
	resp, err := b.client.Get(b.url + path)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

const benEvent = "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Heimwolke//Test//EN\r\n" +
	"BEGIN:VEVENT\r\nUID:zahnarzt-1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260301T100000Z\r\nDTEND:20260301T110000Z\r\nSUMMARY:Zahnarzt\r\nEND:VEVENT\r\n" +
	"END:VCALENDAR\r\n"

// TestDeleteMemberRemovesEverything deletes a member on /admin/people. It
// guards against a deleted member's share link that keeps working, and
// against a new member of the same name who inherits their files and
// calendar.
func TestDeleteMemberRemovesEverything(t *testing.T) {
	box := newDeleteBox(t)
	ctx := context.Background()
	anna := box.logIn(t, "anna", annaPassword)
	ben, secret := anna.addMember("ben")

	for _, c := range []struct {
		method, path, body string
		want               int
	}{
		{"PUT", "/dav/files/ben/tagebuch.txt", "Liebes Tagebuch", http.StatusCreated},
		{"PUT", "/dav/shared/rezept.txt", "Apfelkuchen", http.StatusCreated},
		{"PUT", "/dav/calendars/ben/calendar/zahnarzt.ics", benEvent, http.StatusCreated},
	} {
		if status, body := box.dav(t, "ben", secret, c.method, c.path, c.body); status != c.want {
			t.Fatalf("%s %s as ben: status %d, want %d; body:\n%s", c.method, c.path, status, c.want, body)
		}
	}
	mail := box.svc.mail
	if err := mail.store.Deliver(ctx, "ben", "", strings.NewReader("From: oma@example.net\r\nTo: ben@familie.test\r\nSubject: Geburtstag\r\n\r\nAlles Gute!\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := mail.aliases.Directory([]string{"familie.test"}, box.accounts).Add(ctx, "fussball@familie.test", "ben"); err != nil {
		t.Fatal(err)
	}
	token, err := box.svc.files.CreateShareLink(ctx, ben, webui.NewShareLink{Folder: "home", Path: "tagebuch.txt"})
	if err != nil {
		t.Fatal(err)
	}
	if status := box.getStatus(t, "/s/"+token); status != http.StatusOK {
		t.Fatalf("share link before the deletion: status %d, want 200", status)
	}

	deletePath := fmt.Sprintf("/admin/people/%d/delete", ben.ID)
	anna.get("/admin/people")
	if status, _ := anna.post(deletePath, url.Values{}); status != http.StatusOK {
		t.Fatalf("confirmation page: status %d, want 200", status)
	}
	status, location := anna.post(deletePath, url.Values{"confirm": {"yes"}})
	if status != http.StatusSeeOther || location != "/admin/people?notice=member_deleted" {
		t.Fatalf("deleting ben: got status %d to %q, want 303; page:\n%s", status, location, anna.last)
	}

	if status := box.getStatus(t, "/s/"+token); status != http.StatusNotFound {
		t.Errorf("share link after the deletion: status %d, want 404", status)
	}
	if status, _ := box.dav(t, "ben", secret, "PROPFIND", "/dav/files/ben/", "", "Depth", "0"); status != http.StatusUnauthorized {
		t.Errorf("ben's app password after the deletion: status %d, want 401", status)
	}
	if _, err := os.Stat(filepath.Join(box.dataDir, "files", "home", "ben")); !os.IsNotExist(err) {
		t.Errorf("ben's home folder after the deletion: got %v, want it missing", err)
	}
	var collections int
	if err := box.svc.db.QueryRow(`SELECT count(*) FROM dav_collections WHERE owner = 'ben'`).Scan(&collections); err != nil {
		t.Fatal(err)
	}
	if collections != 0 {
		t.Errorf("ben's calendars and address books after the deletion: got %d, want 0", collections)
	}
	if data, err := os.ReadFile(filepath.Join(box.dataDir, "files", "shared", "rezept.txt")); err != nil || string(data) != "Apfelkuchen" {
		t.Errorf("ben's file in the shared folder after the deletion: got %q (%v), want it kept", data, err)
	}

	if list, err := mail.aliases.List(ctx); err != nil || len(list) != 0 {
		t.Errorf("aliases after the deletion: got %v (%v), want none", list, err)
	}

	// A new member with the same name starts empty.
	newBen, newSecret := anna.addMember("ben")
	if newBen.ID == ben.ID {
		t.Fatalf("new ben got the deleted account's ID %d", ben.ID)
	}
	status, body := box.dav(t, "ben", newSecret, "PROPFIND", "/dav/files/ben/", "", "Depth", "1")
	if status != http.StatusMultiStatus {
		t.Fatalf("PROPFIND of new ben's home: status %d, want 207; body:\n%s", status, body)
	}
	if strings.Contains(body, "tagebuch.txt") {
		t.Errorf("new ben's home lists the deleted member's file:\n%s", body)
	}
	if status, _ := box.dav(t, "ben", newSecret, "GET", "/dav/files/ben/tagebuch.txt", ""); status != http.StatusNotFound {
		t.Errorf("GET of the deleted member's file as new ben: status %d, want 404", status)
	}
	if status, _ := box.dav(t, "ben", newSecret, "GET", "/dav/calendars/ben/calendar/zahnarzt.ics", ""); status != http.StatusNotFound {
		t.Errorf("GET of the deleted member's event as new ben: status %d, want 404", status)
	}
	boxes, err := mail.store.Mailboxes(ctx, "ben")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range boxes {
		st, err := mail.store.MailboxStatus(ctx, m.ID)
		if err != nil {
			t.Fatal(err)
		}
		if st.Messages != 0 {
			t.Errorf("new ben's mailbox %s holds %d messages, want 0", m.Name, st.Messages)
		}
	}
	if links, err := box.svc.files.ShareLinks(ctx, newBen); err != nil || len(links) != 0 {
		t.Errorf("new ben's share links: got %d (%v), want 0", len(links), err)
	}
	if status := box.getStatus(t, "/s/"+token); status != http.StatusNotFound {
		t.Errorf("the deleted member's share link after a new ben: status %d, want 404", status)
	}
}

func TestFileQuotaRule(t *testing.T) {
	log := slog.New(slog.DiscardHandler)
	if got := fileQuota(filepath.Join(t.TempDir(), "missing"), log); got != quotaFloor {
		t.Errorf("quota for a missing folder: got %d, want the minimum %d", got, quotaFloor)
	}
	got := fileQuota(t.TempDir(), log)
	if got < quotaFloor {
		t.Errorf("quota: got %d, want at least %d", got, quotaFloor)
	}
}
