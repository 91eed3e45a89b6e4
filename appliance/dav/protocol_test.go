package dav

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
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

func syncReport(token string, limit int) string {
	l := ""
	if limit > 0 {
		l = fmt.Sprintf("<D:limit><D:nresults>%d</D:nresults></D:limit>", limit)
	}
	return `<D:sync-collection xmlns:D="DAV:"><D:sync-token>` + token + `</D:sync-token><D:sync-level>1</D:sync-level>` + l +
		`<D:prop><D:getetag/></D:prop></D:sync-collection>`
}

var syncTokenPattern = regexp.MustCompile(`<D:sync-token>([^<]+)</D:sync-token>`)

func TestSyncCollection(t *testing.T) {
	ts := newTestServer(t, "anna")
	book := "/dav/addressbooks/anna/contacts/"
	card := func(n int) string {
		return fmt.Sprintf("BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c%d\r\nFN:Kontakt %d\r\nEND:VCARD\r\n", n, n)
	}
	for i := 1; i <= 3; i++ {
		wantStatus(t, "PUT card", ts.do(t, "anna", "PUT", fmt.Sprintf("%sc%d.vcf", book, i), card(i)), http.StatusCreated)
	}

	r := ts.do(t, "anna", "REPORT", book, syncReport("", 0), "Depth", "0")
	wantStatus(t, "initial sync", r, http.StatusMultiStatus)
	if n := strings.Count(r.body, "<D:getetag>"); n != 3 {
		t.Errorf("initial sync lists %d ETags, want 3: %s", n, r.body)
	}
	token := syncTokenPattern.FindStringSubmatch(r.body)[1]

	r = ts.do(t, "anna", "REPORT", book, syncReport(token, 0), "Depth", "0")
	if strings.Contains(r.body, "<D:response>") {
		t.Errorf("sync without changes lists responses: %s", r.body)
	}

	wantStatus(t, "DELETE c1", ts.do(t, "anna", "DELETE", book+"c1.vcf", ""), http.StatusNoContent)
	wantStatus(t, "PUT c2 changed", ts.do(t, "anna", "PUT", book+"c2.vcf", strings.Replace(card(2), "Kontakt", "Person", 1)), http.StatusNoContent)
	r = ts.do(t, "anna", "REPORT", book, syncReport(token, 0), "Depth", "0")
	if !strings.Contains(r.body, "<D:href>/dav/addressbooks/anna/contacts/c1.vcf</D:href><D:status>HTTP/1.1 404 Not Found</D:status>") {
		t.Errorf("incremental sync lacks the 404 for the deleted c1: %s", r.body)
	}
	if !strings.Contains(r.body, "c2.vcf") || strings.Contains(r.body, "c3.vcf") {
		t.Errorf("incremental sync = %s, want c2 changed and c3 not listed", r.body)
	}
	newToken := syncTokenPattern.FindStringSubmatch(r.body)[1]
	if newToken == token {
		t.Errorf("sync token after changes = %s, want a new one", newToken)
	}

	r = ts.do(t, "anna", "REPORT", book, syncReport("", 1), "Depth", "0")
	if !strings.Contains(r.body, "507 Insufficient Storage") || strings.Count(r.body, "<D:getetag>") != 1 {
		t.Errorf("sync with limit 1 = %s, want one member and a 507 for the collection", r.body)
	}
	partial := syncTokenPattern.FindStringSubmatch(r.body)[1]
	r = ts.do(t, "anna", "REPORT", book, syncReport(partial, 0), "Depth", "0")
	if strings.Count(r.body, "<D:getetag>") != 1 {
		t.Errorf("sync after a truncated one = %s, want the remaining member", r.body)
	}
}

func TestQueriesAndMultiget(t *testing.T) {
	ts := newTestServer(t, "anna")
	book := "/dav/addressbooks/anna/contacts/"
	tasks := "/dav/calendars/anna/tasks/"
	wantStatus(t, "PUT Jürgen", ts.do(t, "anna", "PUT", book+"j.vcf", vCardPhoto), http.StatusCreated)
	wantStatus(t, "PUT Zoë", ts.do(t, "anna", "PUT", book+"z.vcf", vCard4), http.StatusCreated)

	query := `<CR:addressbook-query xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav"><D:prop><D:getetag/><CR:address-data/></D:prop>
<CR:filter><CR:prop-filter name="FN"><CR:text-match collation="i;unicode-casemap" match-type="contains">müller</CR:text-match></CR:prop-filter></CR:filter></CR:addressbook-query>`
	r := ts.do(t, "anna", "REPORT", book, query, "Depth", "1")
	wantStatus(t, "addressbook-query", r, http.StatusMultiStatus)
	if !strings.Contains(r.body, "j.vcf") || strings.Contains(r.body, "z.vcf") {
		t.Errorf("addressbook-query for müller = %s, want j.vcf only", r.body)
	}

	multiget := `<CR:addressbook-multiget xmlns:D="DAV:" xmlns:CR="urn:ietf:params:xml:ns:carddav"><D:prop><D:getetag/><CR:address-data/></D:prop>
<D:href>/dav/addressbooks/anna/contacts/z.vcf</D:href><D:href>/dav/addressbooks/anna/contacts/missing.vcf</D:href></CR:addressbook-multiget>`
	r = ts.do(t, "anna", "REPORT", book, multiget, "Depth", "1")
	if !strings.Contains(r.body, "Zoë Ångström") || !strings.Contains(r.body, "404 Not Found") {
		t.Errorf("addressbook-multiget = %s, want Zoë's data and a 404 for missing.vcf", r.body)
	}

	todo := "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VTODO\r\nUID:t1\r\nDTSTAMP:20260101T000000Z\r\nDUE:20260410T120000Z\r\nSUMMARY:Steuer\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
	undated := "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VTODO\r\nUID:t2\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Irgendwann\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"
	wantStatus(t, "PUT task", ts.do(t, "anna", "PUT", tasks+"t1.ics", todo), http.StatusCreated)
	wantStatus(t, "PUT undated task", ts.do(t, "anna", "PUT", tasks+"t2.ics", undated), http.StatusCreated)
	todoQuery := func(start, end string) string {
		return `<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop><C:filter>
<C:comp-filter name="VCALENDAR"><C:comp-filter name="VTODO"><C:time-range start="` + start + `" end="` + end + `"/></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>`
	}
	r = ts.do(t, "anna", "REPORT", tasks, todoQuery("20260401T000000Z", "20260501T000000Z"), "Depth", "1")
	if !strings.Contains(r.body, "t1.ics") || !strings.Contains(r.body, "t2.ics") {
		t.Errorf("VTODO query for April = %s, want t1 (due) and t2 (undated)", r.body)
	}
	r = ts.do(t, "anna", "REPORT", tasks, todoQuery("20260501T000000Z", "20260601T000000Z"), "Depth", "1")
	if strings.Contains(r.body, "t1.ics") || !strings.Contains(r.body, "t2.ics") {
		t.Errorf("VTODO query for May = %s, want t2 only", r.body)
	}

	calMultiget := `<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/><C:calendar-data/></D:prop>
<D:href>/dav/calendars/anna/tasks/t1.ics</D:href></C:calendar-multiget>`
	r = ts.do(t, "anna", "REPORT", tasks, calMultiget, "Depth", "1")
	if !strings.Contains(r.body, "SUMMARY:Steuer&#xD;&#xA;") {
		t.Errorf("calendar-multiget = %s, want t1's data with CRLF kept", r.body)
	}
}

func TestDeleteUser(t *testing.T) {
	ts := newTestServer(t, "anna")
	event := fmt.Sprintf(testEvent, "e1", "20260301T100000Z", "20260301T110000Z", "Weg")
	wantStatus(t, "PUT own event", ts.do(t, "anna", "PUT", "/dav/calendars/anna/calendar/e1.ics", event), http.StatusCreated)
	wantStatus(t, "PUT household event", ts.do(t, "anna", "PUT", "/dav/calendars/anna/household/e1.ics", event), http.StatusCreated)

	if err := ts.handler.DeleteUser(context.Background(), "anna"); err != nil {
		t.Fatal(err)
	}
	wantStatus(t, "GET own event after DeleteUser", ts.do(t, "anna", "GET", "/dav/calendars/anna/calendar/e1.ics", ""), http.StatusNotFound)
	wantStatus(t, "GET household event after DeleteUser", ts.do(t, "anna", "GET", "/dav/calendars/anna/household/e1.ics", ""), http.StatusOK)
}

// TestInstantAtRangeStart guards against the store's first pass dropping
// an event without duration that starts exactly at the range start, which
// RFC 4791 section 9.9 counts as inside.
func TestInstantAtRangeStart(t *testing.T) {
	ts := newTestServer(t, "anna")
	instant := "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:i1\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260301T000000Z\r\nSUMMARY:Punkt\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
	wantStatus(t, "PUT instant", ts.do(t, "anna", "PUT", "/dav/calendars/anna/calendar/i1.ics", instant), http.StatusCreated)
	query := `<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop><C:filter>
<C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:time-range start="20260301T000000Z" end="20260302T000000Z"/></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>`
	r := ts.do(t, "anna", "REPORT", "/dav/calendars/anna/calendar/", query, "Depth", "1")
	if !strings.Contains(r.body, "i1.ics") {
		t.Errorf("query from the instant's start = %s, want i1.ics", r.body)
	}
}
