package dav

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/packages/testpeer"
)

const lockBody = `<?xml version="1.0"?><D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope>` +
	`<D:locktype><D:write/></D:locktype><D:owner>anna</D:owner></D:lockinfo>`

var lockTokenRE = regexp.MustCompile(`^<(urn:uuid:[0-9a-f-]+)>$`)

// lockPath locks path as login and returns the lock token.
func (ts *testServer) lockPath(t *testing.T, login, path, depth string) string {
	t.Helper()
	r := ts.do(t, login, "LOCK", path, lockBody, "Depth", depth, "Timeout", "Second-600", "Content-Type", "application/xml")
	wantStatus(t, "LOCK "+path, r, http.StatusOK)
	m := lockTokenRE.FindStringSubmatch(r.header.Get("Lock-Token"))
	if m == nil {
		t.Fatalf("LOCK %s: got Lock-Token %q, want <urn:uuid:...>", path, r.header.Get("Lock-Token"))
	}
	if !strings.Contains(r.body, "<D:locktoken><D:href>"+m[1]+"</D:href></D:locktoken>") {
		t.Errorf("LOCK %s: body lacks the lock token: %s", path, r.body)
	}
	return m[1]
}

func TestLockObjectEnforced(t *testing.T) {
	ts := newTestServer(t, "anna")
	obj := "/dav/calendars/anna/calendar/termin.ics"
	event := fmt.Sprintf(testEvent, "termin-1", "20260301T100000Z", "20260301T110000Z", "Zahnarzt")
	changed := fmt.Sprintf(testEvent, "termin-1", "20260301T100000Z", "20260301T110000Z", "Zahnarzt verschoben")
	ical := []string{"Content-Type", "text/calendar"}
	wantStatus(t, "PUT new", ts.do(t, "anna", "PUT", obj, event, ical...), http.StatusCreated)

	token := ts.lockPath(t, "anna", obj, "0")

	r := ts.do(t, "anna", "PUT", obj, changed, ical...)
	wantStatus(t, "PUT without token", r, http.StatusLocked)
	if !strings.Contains(r.body, "lock-token-submitted") {
		t.Errorf("PUT without token: body lacks lock-token-submitted: %s", r.body)
	}
	wantStatus(t, "DELETE without token", ts.do(t, "anna", "DELETE", obj, ""), http.StatusLocked)
	wantStatus(t, "PUT with another token", ts.do(t, "anna", "PUT", obj, changed,
		"Content-Type", "text/calendar", "If", "(<urn:uuid:00000000-0000-4000-8000-000000000000>)"), http.StatusPreconditionFailed)
	wantStatus(t, "LOCK conflicting", ts.do(t, "anna", "LOCK", obj, lockBody, "Depth", "0"), http.StatusLocked)

	wantStatus(t, "PUT with token", ts.do(t, "anna", "PUT", obj, changed,
		"Content-Type", "text/calendar", "If", "(<"+token+">)"), http.StatusNoContent)
	got := ts.do(t, "anna", "GET", obj, "")
	if got.body != changed {
		t.Errorf("GET after PUT with token: got %q, want %q", got.body, changed)
	}

	propfind := `<D:propfind xmlns:D="DAV:"><D:prop><D:lockdiscovery/><D:supportedlock/></D:prop></D:propfind>`
	r = ts.do(t, "anna", "PROPFIND", obj, propfind, "Depth", "0")
	wantStatus(t, "PROPFIND lockdiscovery", r, http.StatusMultiStatus)
	for _, want := range []string{"<D:locktoken><D:href>" + token + "</D:href></D:locktoken>",
		"<D:lockroot><D:href>" + obj + "</D:href></D:lockroot>", "<D:lockentry><D:lockscope><D:shared/>"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("PROPFIND body lacks %s: %s", want, r.body)
		}
	}

	wantStatus(t, "UNLOCK wrong token", ts.do(t, "anna", "UNLOCK", obj, "", "Lock-Token", "<urn:uuid:1>"), http.StatusConflict)
	wantStatus(t, "UNLOCK", ts.do(t, "anna", "UNLOCK", obj, "", "Lock-Token", "<"+token+">"), http.StatusNoContent)
	wantStatus(t, "DELETE after UNLOCK", ts.do(t, "anna", "DELETE", obj, ""), http.StatusNoContent)
}

func TestLockCollectionEnforced(t *testing.T) {
	ts := newTestServer(t, "anna")
	coll := "/dav/calendars/anna/calendar/"
	obj := coll + "neu.ics"
	event := fmt.Sprintf(testEvent, "neu-1", "20260302T100000Z", "20260302T110000Z", "Elternabend")
	proppatch := `<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:displayname>Familie</D:displayname></D:prop></D:set></D:propertyupdate>`

	token := ts.lockPath(t, "anna", coll, "infinity")

	wantStatus(t, "PUT member without token", ts.do(t, "anna", "PUT", obj, event, "Content-Type", "text/calendar"), http.StatusLocked)
	wantStatus(t, "PROPPATCH without token", ts.do(t, "anna", "PROPPATCH", coll, proppatch), http.StatusLocked)
	wantStatus(t, "DELETE without token", ts.do(t, "anna", "DELETE", coll, ""), http.StatusLocked)
	wantStatus(t, "PUT member with token", ts.do(t, "anna", "PUT", obj, event,
		"Content-Type", "text/calendar", "If", "<"+ts.URL+coll+"> (<"+token+">)"), http.StatusCreated)
	wantStatus(t, "PROPPATCH with token", ts.do(t, "anna", "PROPPATCH", coll, proppatch, "If", "(<"+token+">)"), http.StatusMultiStatus)
	wantStatus(t, "UNLOCK", ts.do(t, "anna", "UNLOCK", coll, "", "Lock-Token", "<"+token+">"), http.StatusNoContent)
	wantStatus(t, "PUT member after UNLOCK", ts.do(t, "anna", "PUT", obj, event, "Content-Type", "text/calendar"), http.StatusNoContent)
}

func TestLockHomeBlocksMkcalendar(t *testing.T) {
	ts := newTestServer(t, "anna")
	home := "/dav/calendars/anna/"
	newCal := home + "urlaub/"
	wantStatus(t, "LOCK missing collection", ts.do(t, "anna", "LOCK", newCal, lockBody), http.StatusConflict)
	wantStatus(t, "LOCK principal", ts.do(t, "anna", "LOCK", "/dav/principals/anna/", lockBody), http.StatusMethodNotAllowed)

	homeToken := ts.lockPath(t, "anna", home, "infinity")
	wantStatus(t, "MKCALENDAR without token", ts.do(t, "anna", "MKCALENDAR", newCal, ""), http.StatusLocked)
	wantStatus(t, "MKCOL without token", ts.do(t, "anna", "MKCOL", newCal, ""), http.StatusLocked)
	wantStatus(t, "MKCALENDAR with token", ts.do(t, "anna", "MKCALENDAR", newCal, "", "If", "(<"+homeToken+">)"), http.StatusCreated)
	wantStatus(t, "UNLOCK home", ts.do(t, "anna", "UNLOCK", home, "", "Lock-Token", "<"+homeToken+">"), http.StatusNoContent)

	calToken := ts.lockPath(t, "anna", newCal, "infinity")
	wantStatus(t, "DELETE locked calendar", ts.do(t, "anna", "DELETE", newCal, ""), http.StatusLocked)
	wantStatus(t, "DELETE with token", ts.do(t, "anna", "DELETE", newCal, "", "If", "(<"+calToken+">)"), http.StatusNoContent)
}

func TestDeleteCollectionLockedMember(t *testing.T) {
	ts := newTestServer(t, "anna")
	coll := "/dav/calendars/anna/ferien/"
	obj := coll + "reise.ics"
	event := fmt.Sprintf(testEvent, "reise-1", "20260801T100000Z", "20260802T110000Z", "Reise")
	wantStatus(t, "MKCALENDAR", ts.do(t, "anna", "MKCALENDAR", coll, ""), http.StatusCreated)
	wantStatus(t, "PUT", ts.do(t, "anna", "PUT", obj, event, "Content-Type", "text/calendar"), http.StatusCreated)

	token := ts.lockPath(t, "anna", obj, "0")
	wantStatus(t, "DELETE collection without member token", ts.do(t, "anna", "DELETE", coll, ""), http.StatusLocked)
	wantStatus(t, "DELETE collection with member token", ts.do(t, "anna", "DELETE", coll, "",
		"If", "<"+ts.URL+obj+"> (<"+token+">)"), http.StatusNoContent)
}

func TestOptionsAdvertisesLocking(t *testing.T) {
	ts := newTestServer(t, "anna")
	r := ts.do(t, "anna", "OPTIONS", "/dav/calendars/anna/calendar/", "")
	if got := r.header.Get("DAV"); !strings.HasPrefix(got, "1, 2, 3, calendar-access, addressbook") {
		t.Errorf("DAV header: got %q, want it to start with 1, 2, 3, calendar-access, addressbook", got)
	}
	if got := r.header.Get("Allow"); !strings.Contains(got, "LOCK, UNLOCK") {
		t.Errorf("Allow header: got %q, want LOCK, UNLOCK in it", got)
	}
}

// TestCadaverLocksCalendarObject drives cadaver, which locks and unlocks
// through this handler and shows the lock with discover.
func TestCadaverLocksCalendarObject(t *testing.T) {
	cadaver := testpeer.Require(t, "cadaver", "cadaver")
	ts := newTestServer(t, "anna")
	obj := "/dav/calendars/anna/calendar/termin.ics"
	event := fmt.Sprintf(testEvent, "termin-2", "20260303T100000Z", "20260303T110000Z", "Turnen")
	wantStatus(t, "PUT", ts.do(t, "anna", "PUT", obj, event, "Content-Type", "text/calendar"), http.StatusCreated)

	work := t.TempDir()
	// cadaver reads the credentials from ~/.netrc.
	netrc := "machine 127.0.0.1 login anna password " + ts.passwords["anna"] + "\n"
	if err := os.WriteFile(filepath.Join(work, ".netrc"), []byte(netrc), 0o600); err != nil {
		t.Fatal(err)
	}
	script := strings.Join([]string{
		"lock termin.ics",
		"discover termin.ics",
		"showlocks",
		"unlock termin.ics",
		"discover termin.ics",
		"quit",
	}, "\n") + "\n"

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, cadaver, ts.URL+"/dav/calendars/anna/calendar/")
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "HOME="+work)
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	transcript := string(out)
	t.Logf("cadaver transcript:\n%s", transcript)
	if err != nil {
		t.Fatalf("cadaver: %v", err)
	}
	for _, want := range []string{
		"Locking `termin.ics': succeeded.",
		"Scope: exclusive  Type: write",
		"Unlocking `termin.ics': succeeded.",
	} {
		if !strings.Contains(transcript, want) {
			t.Errorf("transcript lacks %q", want)
		}
	}
	if strings.Contains(transcript, "failed") {
		t.Errorf("transcript reports a failure")
	}
}
