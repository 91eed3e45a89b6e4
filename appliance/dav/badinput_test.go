package dav

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// snapshot is the state of a collection that a rejected request must not
// change: its ctag and the bytes of one member.
type snapshot struct {
	ctag   string
	member string
}

func (ts *testServer) snapshot(t *testing.T, login, collection, member string) snapshot {
	t.Helper()
	r := ts.do(t, login, "PROPFIND", collection, `<D:propfind xmlns:D="DAV:" xmlns:CS="http://calendarserver.org/ns/"><D:prop><CS:getctag/></D:prop></D:propfind>`, "Depth", "0")
	wantStatus(t, "PROPFIND getctag", r, http.StatusMultiStatus)
	g := ts.do(t, login, "GET", collection+member, "")
	wantStatus(t, "GET "+member, g, http.StatusOK)
	return snapshot{ctag: r.body, member: g.body}
}

func TestBadInputChangesNothing(t *testing.T) {
	ts := newTestServer(t, "anna", "ben")
	cal := "/dav/calendars/anna/calendar/"
	book := "/dav/addressbooks/anna/contacts/"
	event := fmt.Sprintf(testEvent, "keep", "20260301T100000Z", "20260301T110000Z", "Bleibt")
	wantStatus(t, "PUT event", ts.do(t, "anna", "PUT", cal+"keep.ics", event), http.StatusCreated)
	wantStatus(t, "PUT vCard", ts.do(t, "anna", "PUT", book+"keep.vcf", vCard4), http.StatusCreated)
	calBefore := ts.snapshot(t, "anna", cal, "keep.ics")
	bookBefore := ts.snapshot(t, "anna", book, "keep.vcf")

	billionLaughs := `<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:displayname>&lol3;</D:displayname></D:prop></D:set></D:propertyupdate>`
	externalEntity := `<?xml version="1.0"?><!DOCTYPE x [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<D:propertyupdate xmlns:D="DAV:"><D:set><D:prop><D:displayname>&xxe;</D:displayname></D:prop></D:set></D:propertyupdate>`
	hugeXML := `<D:propfind xmlns:D="DAV:"><D:prop>` + strings.Repeat("<D:getetag/>", 400000) + `</D:prop></D:propfind>`

	withEvent := func(body string) string {
		return "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:x\r\n" + body + "END:VCALENDAR\r\n"
	}
	cases := []struct {
		name, method, path, body string
		want                     int
	}{
		{"malformed XML", "PROPFIND", cal, `<D:propfind xmlns:D="DAV:"><D:prop>`, http.StatusBadRequest},
		{"malformed PROPPATCH", "PROPPATCH", cal, `<D:propertyupdate xmlns:D="DAV:"><D:set>`, http.StatusBadRequest},
		{"entity expansion", "PROPPATCH", cal, billionLaughs, http.StatusBadRequest},
		{"external entity", "PROPPATCH", cal, externalEntity, http.StatusBadRequest},
		{"huge XML body", "REPORT", cal, hugeXML, http.StatusRequestEntityTooLarge},
		{"huge event", "PUT", cal + "huge.ics", withEvent("BEGIN:VEVENT\r\nUID:huge\r\nDTSTART:20260301T100000Z\r\nDESCRIPTION:" + strings.Repeat("x", 2<<20) + "\r\nEND:VEVENT\r\n"), http.StatusRequestEntityTooLarge},
		{"huge event over existing", "PUT", cal + "keep.ics", withEvent("BEGIN:VEVENT\r\nUID:keep\r\nDESCRIPTION:" + strings.Repeat("x", 2<<20) + "\r\nEND:VEVENT\r\n"), http.StatusRequestEntityTooLarge},
		{"not iCalendar", "PUT", cal + "keep.ics", "hello world\r\n", http.StatusBadRequest},
		{"iCalendar without END", "PUT", cal + "keep.ics", "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:keep\r\n", http.StatusBadRequest},
		{"two VCALENDARs", "PUT", cal + "keep.ics", withEvent("BEGIN:VEVENT\r\nUID:keep\r\nDTSTART:20260301T100000Z\r\nEND:VEVENT\r\n") + withEvent("BEGIN:VEVENT\r\nUID:other\r\nDTSTART:20260301T100000Z\r\nEND:VEVENT\r\n"), http.StatusBadRequest},
		{"METHOD in a stored object", "PUT", cal + "keep.ics", withEvent("METHOD:REQUEST\r\nBEGIN:VEVENT\r\nUID:keep\r\nDTSTART:20260301T100000Z\r\nEND:VEVENT\r\n"), http.StatusForbidden},
		{"two UIDs", "PUT", cal + "keep.ics", withEvent("BEGIN:VEVENT\r\nUID:keep\r\nDTSTART:20260301T100000Z\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:other\r\nDTSTART:20260301T100000Z\r\nEND:VEVENT\r\n"), http.StatusForbidden},
		{"line ending in a parameter", "PUT", cal + "keep.ics", withEvent("BEGIN:VEVENT\r\nUID:keep\r\nDTSTART;VALUE=DATE\r\nEND:VEVENT\r\n"), http.StatusBadRequest},
		{"vCard line ending in a parameter", "PUT", book + "keep.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nFN;CHARSET\r\nEND:VCARD\r\n", http.StatusBadRequest},
		{"invalid DTSTART", "PUT", cal + "keep.ics", withEvent("BEGIN:VEVENT\r\nUID:keep\r\nDTSTART:tomorrow\r\nEND:VEVENT\r\n"), http.StatusBadRequest},
		{"invalid RRULE", "PUT", cal + "keep.ics", withEvent("BEGIN:VEVENT\r\nUID:keep\r\nDTSTART:20260301T100000Z\r\nRRULE:FREQ=SOMETIMES\r\nEND:VEVENT\r\n"), http.StatusBadRequest},
		{"no VERSION", "PUT", cal + "keep.ics", "BEGIN:VCALENDAR\r\nPRODID:x\r\nBEGIN:VEVENT\r\nUID:keep\r\nDTSTART:20260301T100000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n", http.StatusBadRequest},
		{"vCard into a calendar", "PUT", cal + "keep.ics", vCard4, http.StatusBadRequest},
		{"vCard without FN", "PUT", book + "keep.vcf", "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:x\r\nEND:VCARD\r\n", http.StatusBadRequest},
		{"vCard 2.1", "PUT", book + "keep.vcf", "BEGIN:VCARD\r\nVERSION:2.1\r\nFN:Alt\r\nEND:VCARD\r\n", http.StatusBadRequest},
		{"vCard not UTF-8", "PUT", book + "keep.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:J\xfcrgen\r\nEND:VCARD\r\n", http.StatusBadRequest},
		{"two vCards", "PUT", book + "keep.vcf", vCard4 + vCard4, http.StatusBadRequest},
		{"iCalendar into an address book", "PUT", book + "keep.vcf", event, http.StatusBadRequest},
		{"Depth infinity", "PROPFIND", "/dav/calendars/anna/", "", http.StatusForbidden},
		{"unknown report", "REPORT", cal, `<D:expand-property xmlns:D="DAV:"/>`, http.StatusForbidden},
		{"foreign sync token", "REPORT", cal, `<D:sync-collection xmlns:D="DAV:"><D:sync-token>urn:heimwolke:sync:0000-1</D:sync-token><D:sync-level>1</D:sync-level><D:prop><D:getetag/></D:prop></D:sync-collection>`, http.StatusForbidden},
		{"invalid time-range", "REPORT", cal, `<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="VEVENT"><C:time-range start="yesterday"/></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>`, http.StatusBadRequest},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			header := []string{}
			if c.name == "Depth infinity" {
				header = []string{"Depth", "infinity"}
			}
			r := ts.do(t, "anna", c.method, c.path, c.body, header...)
			if r.status != c.want {
				t.Errorf("%s %s: got status %d, want %d; body: %.300s", c.method, c.path, r.status, c.want, r.body)
			}
		})
	}

	if got := ts.snapshot(t, "anna", cal, "keep.ics"); got != calBefore {
		t.Errorf("calendar after rejected requests = %+v, want unchanged %+v", got, calBefore)
	}
	if got := ts.snapshot(t, "anna", book, "keep.vcf"); got != bookBefore {
		t.Errorf("address book after rejected requests = %+v, want unchanged %+v", got, bookBefore)
	}
	if r := ts.do(t, "anna", "GET", cal+"huge.ics", ""); r.status != http.StatusNotFound {
		t.Errorf("GET huge.ics after 413: got status %d, want 404", r.status)
	}
}

// TestTooLargeNamesTheLimit guards against a 413 without a reason that a
// user could act on.
func TestTooLargeNamesTheLimit(t *testing.T) {
	ts := newTestServer(t, "anna")
	r := ts.do(t, "anna", "PUT", "/dav/addressbooks/anna/contacts/big.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Big\r\nPHOTO;ENCODING=b:"+strings.Repeat("A", 2<<20)+"\r\nEND:VCARD\r\n")
	wantStatus(t, "PUT large vCard", r, http.StatusRequestEntityTooLarge)
	if !strings.Contains(r.body, "1048576 bytes") {
		t.Errorf("413 body = %q, want the limit of 1048576 bytes", r.body)
	}
}

// rawRequest sends a request line with the path exactly as given, which
// net/http's client would clean or escape.
func (ts *testServer) rawRequest(t *testing.T, login, method, rawPath, body string) int {
	t.Helper()
	u, err := url.Parse(ts.URL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.Dial("tcp", u.Host)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	req, err := http.NewRequest(method, ts.URL+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.URL.Opaque = rawPath
	req.SetBasicAuth(login, ts.passwords[login])
	if err := req.Write(conn); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(conn), req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestPathTraversal(t *testing.T) {
	ts := newTestServer(t, "anna", "ben")
	event := fmt.Sprintf(testEvent, "sneaky", "20260301T100000Z", "20260301T110000Z", "Eindringling")
	benCal := "/dav/calendars/ben/calendar/"
	wantStatus(t, "PUT ben's own event", ts.do(t, "ben", "PUT", benCal+"own.ics", fmt.Sprintf(testEvent, "own", "20260301T100000Z", "20260301T110000Z", "Ben")), http.StatusCreated)
	before := ts.snapshot(t, "ben", benCal, "own.ics")

	paths := map[string]int{
		"/dav/calendars/anna/../ben/calendar/sneaky.ics":          http.StatusBadRequest,
		"/dav/calendars/anna/%2e%2e/ben/calendar/sneaky.ics":      http.StatusBadRequest,
		"/dav/calendars/anna/calendar/..%2F..%2Fben%2Fsneaky.ics": http.StatusBadRequest,
		"/dav/calendars/anna/calendar/%2e%2e":                     http.StatusBadRequest,
		"/dav/calendars/ben/calendar/sneaky.ics":                  http.StatusForbidden,
		"/dav/calendars/anna/calendar/a%00b.ics":                  http.StatusBadRequest,
		"/dav/calendars/anna/calendar/a%5Cb.ics":                  http.StatusBadRequest,
		"/dav/calendars/anna/calendar/sub/sneaky.ics":             http.StatusNotFound,
		"/dav/../dav/calendars/ben/calendar/sneaky.ics":           http.StatusBadRequest,
		"/etc/passwd": http.StatusNotFound,
	}
	for path, want := range paths {
		if got := ts.rawRequest(t, "anna", "PUT", path, event); got != want {
			t.Errorf("PUT %s: got status %d, want %d", path, got, want)
		}
	}
	if got := ts.snapshot(t, "ben", benCal, "own.ics"); got != before {
		t.Errorf("ben's calendar after traversal attempts = %+v, want unchanged %+v", got, before)
	}
}
