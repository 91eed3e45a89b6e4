package dav

import (
	"bytes"
	"net/http"
	"testing"
	"time"
)

// FuzzCalendarObject feeds PUT bodies through the checks, the range
// computation, a time-range filter, expand and limit-recurrence-set,
// which must not panic or hang. Expanded and limited objects must parse
// again.
func FuzzCalendarObject(f *testing.F) {
	f.Add([]byte("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:a\r\nDTSTART:20260301T100000Z\r\nRRULE:FREQ=DAILY;COUNT=5\r\nEXDATE:20260302T100000Z,20260303T100000Z\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"))
	f.Add([]byte("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VEVENT\r\nUID:b\r\nDTSTART;TZID=Europe/Berlin:20260301T100000\r\nDURATION:PT1H\r\nRRULE:FREQ=SECONDLY\r\nEND:VEVENT\r\nBEGIN:VEVENT\r\nUID:b\r\nRECURRENCE-ID;TZID=Europe/Berlin:20260301T100001\r\nDTSTART;VALUE=DATE:20260305\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"))
	f.Add([]byte("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nBEGIN:VTODO\r\nUID:c\r\nDUE:20260301\r\nEND:VTODO\r\nEND:VCALENDAR\r\n"))
	filter, err := newCalendarFilter(&compFilterXML{Name: "VCALENDAR", CompFilters: []compFilterXML{{Name: "VEVENT", TimeRange: &timeRangeXML{Start: "20260301T000000Z", End: "20260302T000000Z"}}}})
	if err != nil {
		f.Fatal(err)
	}
	window := &timeWindow{start: time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC), end: time.Date(2026, 3, 2, 0, 0, 0, 0, time.UTC)}
	dataRequests := []calendarDataRequest{{expand: window}, {limitRecurrence: window}}

	f.Fuzz(func(t *testing.T, data []byte) {
		done := make(chan struct{})
		go func() {
			defer close(done)
			p, err := parseCalendarObject(data)
			if err != nil {
				return
			}
			if _, _, err := p.checkDates(); err != nil {
				return
			}
			filter.matches(data)
			for _, req := range dataRequests {
				shaped, err := req.apply(data)
				if err != nil {
					continue
				}
				if _, err := decodeOneCalendar(shaped); err != nil {
					t.Errorf("%+v turned %q into %q, which does not parse: %v", req, data, shaped, err)
				}
			}
		}()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			t.Fatalf("checking %q took longer than 10 s", data)
		}
	})
}

// FuzzVCard checks that the vCard checks and a text-match filter do not
// panic.
func FuzzVCard(f *testing.F) {
	f.Add([]byte(vCardPhoto))
	f.Add([]byte(vCard4))
	query := &addressbookQuery{test: "anyof", filters: []cardPropFilterXML{{Name: "FN", TextMatches: []textMatchXML{{Text: "ü"}}}}}
	f.Fuzz(func(t *testing.T, data []byte) {
		if _, _, err := parseVCard(data); err != nil {
			return
		}
		query.matches(data)
	})
}

// FuzzReportBody checks that any REPORT body decodes or gets an
// *httpError, never a panic.
func FuzzReportBody(f *testing.F) {
	f.Add(`<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/></D:prop><C:filter><C:comp-filter name="VCALENDAR"/></C:filter></C:calendar-query>`)
	f.Add(`<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><C:calendar-data><C:expand start="20260301T000000Z" end="20260302T000000Z"/></C:calendar-data></D:prop><C:filter><C:comp-filter name="VCALENDAR"/></C:filter></C:calendar-query>`)
	f.Add(`<!DOCTYPE x [<!ENTITY a "b">]><D:sync-collection xmlns:D="DAV:"><D:sync-token>&a;</D:sync-token></D:sync-collection>`)
	f.Fuzz(func(t *testing.T, body string) {
		r, err := http.NewRequest("REPORT", "/dav/", bytes.NewBufferString(body))
		if err != nil {
			return
		}
		var rb reportBody
		if _, err := readXMLBody(r, &rb); err != nil {
			if _, ok := err.(*httpError); !ok {
				t.Fatalf("readXMLBody(%q) returned %T, want *httpError", body, err)
			}
			return
		}
		if _, err := parseCalendarDataRequest(rb.Prop); err != nil {
			if _, ok := err.(*httpError); !ok {
				t.Fatalf("parseCalendarDataRequest for %q returned %T, want *httpError", body, err)
			}
		}
	})
}
