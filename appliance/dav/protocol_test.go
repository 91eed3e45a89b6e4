package dav

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
)

func TestDiscovery(t *testing.T) {
	ts := newTestServer(t, "anna")

	r := ts.do(t, "anna", "OPTIONS", "/dav/", "")
	wantStatus(t, "OPTIONS", r, http.StatusOK)
	if dav := r.header.Get("DAV"); !strings.Contains(dav, "calendar-access") || !strings.Contains(dav, "addressbook") {
		t.Errorf("OPTIONS DAV header = %q, want calendar-access and addressbook", dav)
	}

	req, _ := http.NewRequest("PROPFIND", ts.URL+"/.well-known/caldav", nil)
	req.SetBasicAuth("anna", ts.passwords["anna"])
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("Location"); resp.StatusCode != http.StatusMovedPermanently || got != "/dav/" {
		t.Errorf("/.well-known/caldav: got %d to %q, want 301 to /dav/", resp.StatusCode, got)
	}

	propfind := `<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:prop><D:current-user-principal/></D:prop></D:propfind>`
	r = ts.do(t, "anna", "PROPFIND", "/dav/", propfind, "Depth", "0")
	wantStatus(t, "PROPFIND /dav/", r, http.StatusMultiStatus)
	if !strings.Contains(r.body, "<D:href>/dav/principals/anna/</D:href>") {
		t.Errorf("PROPFIND /dav/ body lacks the principal href: %s", r.body)
	}

	homes := `<D:propfind xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:CR="urn:ietf:params:xml:ns:carddav">` +
		`<D:prop><C:calendar-home-set/><CR:addressbook-home-set/></D:prop></D:propfind>`
	r = ts.do(t, "anna", "PROPFIND", "/dav/principals/anna/", homes, "Depth", "0")
	wantStatus(t, "PROPFIND principal", r, http.StatusMultiStatus)
	for _, want := range []string{"<D:href>/dav/calendars/anna/</D:href>", "<D:href>/dav/addressbooks/anna/</D:href>"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("PROPFIND principal body lacks %s: %s", want, r.body)
		}
	}
}

func TestDefaultAndHouseholdCollections(t *testing.T) {
	ts := newTestServer(t, "anna", "ben")
	list := `<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/><D:displayname/></D:prop></D:propfind>`

	r := ts.do(t, "anna", "PROPFIND", "/dav/calendars/anna/", list, "Depth", "1")
	wantStatus(t, "PROPFIND calendar home", r, http.StatusMultiStatus)
	for _, want := range []string{"/dav/calendars/anna/calendar/", "/dav/calendars/anna/tasks/", "/dav/calendars/anna/household/", "Kalender", "Aufgaben"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("calendar home lacks %q: %s", want, r.body)
		}
	}
	r = ts.do(t, "anna", "PROPFIND", "/dav/addressbooks/anna/", list, "Depth", "1")
	for _, want := range []string{"/dav/addressbooks/anna/contacts/", "/dav/addressbooks/anna/household/"} {
		if !strings.Contains(r.body, want) {
			t.Errorf("address book home lacks %q: %s", want, r.body)
		}
	}

	event := fmt.Sprintf(testEvent, "shared-1", "20260301T100000Z", "20260301T110000Z", "Elternabend")
	wantStatus(t, "PUT household event as anna", ts.do(t, "anna", "PUT", "/dav/calendars/anna/household/shared-1.ics", event, "Content-Type", "text/calendar"), http.StatusCreated)
	r = ts.do(t, "ben", "GET", "/dav/calendars/ben/household/shared-1.ics", "")
	wantStatus(t, "GET household event as ben", r, http.StatusOK)
	if r.body != event {
		t.Errorf("household event as ben = %q, want %q", r.body, event)
	}
	wantStatus(t, "DELETE household calendar", ts.do(t, "ben", "DELETE", "/dav/calendars/ben/household/", ""), http.StatusForbidden)

	wantStatus(t, "PUT into ben's calendar as anna", ts.do(t, "anna", "PUT", "/dav/calendars/ben/calendar/x.ics", event), http.StatusForbidden)
	wantStatus(t, "PROPFIND ben's home as anna", ts.do(t, "anna", "PROPFIND", "/dav/calendars/ben/", list, "Depth", "1"), http.StatusForbidden)
}

func TestPutConditionsAndETags(t *testing.T) {
	ts := newTestServer(t, "anna")
	path := "/dav/calendars/anna/calendar/e1.ics"
	v1 := fmt.Sprintf(testEvent, "e1", "20260301T100000Z", "20260301T110000Z", "Zahnarzt")
	v2 := fmt.Sprintf(testEvent, "e1", "20260301T120000Z", "20260301T130000Z", "Zahnarzt später")

	r := ts.do(t, "anna", "PUT", path, v1, "If-None-Match", "*")
	wantStatus(t, "PUT new", r, http.StatusCreated)
	etag1 := r.header.Get("ETag")
	if etag1 == "" || strings.HasPrefix(etag1, "W/") {
		t.Fatalf("PUT new: got ETag %q, want a strong ETag", etag1)
	}

	wantStatus(t, "PUT If-None-Match * over existing", ts.do(t, "anna", "PUT", path, v2, "If-None-Match", "*"), http.StatusPreconditionFailed)
	wantStatus(t, "PUT stale If-Match", ts.do(t, "anna", "PUT", path, v2, "If-Match", `"0000"`), http.StatusPreconditionFailed)
	r = ts.do(t, "anna", "PUT", path, v2, "If-Match", etag1)
	wantStatus(t, "PUT current If-Match", r, http.StatusNoContent)
	etag2 := r.header.Get("ETag")
	if etag2 == etag1 {
		t.Errorf("ETag after change = %s, want a new one", etag2)
	}

	wantStatus(t, "DELETE stale If-Match", ts.do(t, "anna", "DELETE", path, "", "If-Match", etag1), http.StatusPreconditionFailed)
	r = ts.do(t, "anna", "GET", path, "")
	if r.body != v2 || r.header.Get("ETag") != etag2 {
		t.Errorf("GET after failed DELETE = %q with ETag %s, want %q with %s", r.body, r.header.Get("ETag"), v2, etag2)
	}
	wantStatus(t, "DELETE current If-Match", ts.do(t, "anna", "DELETE", path, "", "If-Match", etag2), http.StatusNoContent)
	wantStatus(t, "GET after DELETE", ts.do(t, "anna", "GET", path, ""), http.StatusNotFound)
	wantStatus(t, "PUT If-Match on missing", ts.do(t, "anna", "PUT", path, v1, "If-Match", etag2), http.StatusPreconditionFailed)
}

func TestUIDConflict(t *testing.T) {
	ts := newTestServer(t, "anna")
	event := fmt.Sprintf(testEvent, "same-uid", "20260301T100000Z", "20260301T110000Z", "A")
	wantStatus(t, "PUT a.ics", ts.do(t, "anna", "PUT", "/dav/calendars/anna/calendar/a.ics", event), http.StatusCreated)
	r := ts.do(t, "anna", "PUT", "/dav/calendars/anna/calendar/b.ics", event)
	wantStatus(t, "PUT b.ics with the same UID", r, http.StatusConflict)
	if !strings.Contains(r.body, "no-uid-conflict") {
		t.Errorf("UID conflict body = %s, want the no-uid-conflict precondition", r.body)
	}
}

func TestCollectionLifecycle(t *testing.T) {
	ts := newTestServer(t, "anna")
	mkcalendar := `<?xml version="1.0" encoding="utf-8"?>
<C:mkcalendar xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:I="http://apple.com/ns/ical/">
  <D:set><D:prop>
    <D:displayname>Fußball</D:displayname>
    <I:calendar-color>#FF8800FF</I:calendar-color>
    <C:supported-calendar-component-set><C:comp name="VEVENT"/></C:supported-calendar-component-set>
  </D:prop></D:set>
</C:mkcalendar>`
	wantStatus(t, "MKCALENDAR", ts.do(t, "anna", "MKCALENDAR", "/dav/calendars/anna/sport/", mkcalendar), http.StatusCreated)
	wantStatus(t, "MKCALENDAR again", ts.do(t, "anna", "MKCALENDAR", "/dav/calendars/anna/sport/", mkcalendar), http.StatusMethodNotAllowed)

	patch := `<D:propertyupdate xmlns:D="DAV:" xmlns:I="http://apple.com/ns/ical/"><D:set><D:prop>
<D:displayname>Fußball &amp; Turnen</D:displayname><I:calendar-color>#00AA00FF</I:calendar-color></D:prop></D:set></D:propertyupdate>`
	r := ts.do(t, "anna", "PROPPATCH", "/dav/calendars/anna/sport/", patch)
	wantStatus(t, "PROPPATCH", r, http.StatusMultiStatus)
	if !strings.Contains(r.body, "200 OK") {
		t.Errorf("PROPPATCH body = %s, want 200 for both properties", r.body)
	}

	protected := `<D:propertyupdate xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"><D:set><D:prop>
<D:displayname>Nope</D:displayname><CS:getctag>1</CS:getctag></D:prop></D:set></D:propertyupdate>`
	r = ts.do(t, "anna", "PROPPATCH", "/dav/calendars/anna/sport/", protected)
	if !strings.Contains(r.body, "403 Forbidden") || !strings.Contains(r.body, "424 Failed Dependency") {
		t.Errorf("PROPPATCH of a protected property = %s, want 403 for getctag and 424 for displayname", r.body)
	}

	props := `<D:propfind xmlns:D="DAV:" xmlns:I="http://apple.com/ns/ical/" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop>
<D:displayname/><I:calendar-color/><C:supported-calendar-component-set/></D:prop></D:propfind>`
	r = ts.do(t, "anna", "PROPFIND", "/dav/calendars/anna/sport/", props, "Depth", "0")
	for _, want := range []string{"Fußball &amp; Turnen", "#00AA00FF", `<C:comp name="VEVENT"/>`} {
		if !strings.Contains(r.body, want) {
			t.Errorf("PROPFIND after PROPPATCH lacks %q: %s", want, r.body)
		}
	}

	todo := "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VTODO\r\nUID:t1\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Ball\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
	r = ts.do(t, "anna", "PUT", "/dav/calendars/anna/sport/t1.ics", todo)
	wantStatus(t, "PUT VTODO into a VEVENT calendar", r, http.StatusForbidden)

	mkcol := `<D:mkcol xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav"><D:set><D:prop>
<D:resourcetype><D:collection/><CR:addressbook/></D:resourcetype><D:displayname>Verein</D:displayname></D:prop></D:set></D:mkcol>`
	wantStatus(t, "extended MKCOL", ts.do(t, "anna", "MKCOL", "/dav/addressbooks/anna/verein/", mkcol), http.StatusCreated)
	wantStatus(t, "MKCALENDAR in the address book home", ts.do(t, "anna", "MKCALENDAR", "/dav/addressbooks/anna/x/", ""), http.StatusForbidden)
	wantStatus(t, "MKCALENDAR named household", ts.do(t, "anna", "MKCALENDAR", "/dav/calendars/anna/household/", ""), http.StatusForbidden)

	wantStatus(t, "DELETE calendar", ts.do(t, "anna", "DELETE", "/dav/calendars/anna/sport/", ""), http.StatusNoContent)
	wantStatus(t, "PROPFIND deleted calendar", ts.do(t, "anna", "PROPFIND", "/dav/calendars/anna/sport/", props, "Depth", "0"), http.StatusNotFound)
}
