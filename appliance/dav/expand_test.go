package dav

import (
	"encoding/xml"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/teambition/rrule-go"
)

const vtimezoneBerlin = "BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\n" +
	"RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\n" +
	"BEGIN:DAYLIGHT\r\nDTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\n" +
	"TZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n"

func vcalendar(body string) string {
	return "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//Heimwolke//Test//EN\r\n" + body + "END:VCALENDAR\r\n"
}

// expandObjects are the calendar objects of the expand tests, by path.
var expandObjects = map[string]string{
	// Every 12 March, all day, since 2000.
	"/dav/calendars/anna/calendar/birthday.ics": vcalendar("BEGIN:VEVENT\r\nUID:birthday\r\nDTSTAMP:20260101T000000Z\r\n" +
		"DTSTART;VALUE=DATE:20000312\r\nDTEND;VALUE=DATE:20000313\r\nRRULE:FREQ=YEARLY\r\nSUMMARY:Geburtstag\r\nEND:VEVENT\r\n"),
	// Lunch at noon local time on three days.
	"/dav/calendars/anna/calendar/lunch.ics": vcalendar("BEGIN:VEVENT\r\nUID:lunch\r\nDTSTAMP:20260101T000000Z\r\n" +
		"DTSTART:20260310T120000\r\nDTEND:20260310T130000\r\nRRULE:FREQ=DAILY;COUNT=3\r\nSUMMARY:Mittagessen\r\nEND:VEVENT\r\n"),
	// Mondays and Wednesdays 19:00 in Berlin. 9 March is cancelled, 11
	// March moves to 20 April, and 22 April moves to Friday 13 March.
	"/dav/calendars/anna/calendar/choir.ics": vcalendar(vtimezoneBerlin +
		"BEGIN:VEVENT\r\nUID:choir\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Chor\r\n" +
		"DTSTART;TZID=Europe/Berlin:20260302T190000\r\nDTEND;TZID=Europe/Berlin:20260302T203000\r\n" +
		"RRULE:FREQ=WEEKLY;BYDAY=MO,WE\r\nEXDATE;TZID=Europe/Berlin:20260309T190000\r\n" +
		"BEGIN:VALARM\r\nACTION:DISPLAY\r\nDESCRIPTION:Chor\r\nTRIGGER:-PT15M\r\nEND:VALARM\r\nEND:VEVENT\r\n" +
		"BEGIN:VEVENT\r\nUID:choir\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Chor im April\r\n" +
		"RECURRENCE-ID;TZID=Europe/Berlin:20260311T190000\r\n" +
		"DTSTART;TZID=Europe/Berlin:20260420T190000\r\nDTEND;TZID=Europe/Berlin:20260420T203000\r\nEND:VEVENT\r\n" +
		"BEGIN:VEVENT\r\nUID:choir\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Chor vorgezogen\r\n" +
		"RECURRENCE-ID;TZID=Europe/Berlin:20260422T190000\r\n" +
		"DTSTART;TZID=Europe/Berlin:20260313T100000\r\nDTEND;TZID=Europe/Berlin:20260313T113000\r\nEND:VEVENT\r\n"),
	// A single appointment in Berlin time.
	"/dav/calendars/anna/calendar/single.ics": vcalendar(vtimezoneBerlin +
		"BEGIN:VEVENT\r\nUID:single\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Zahnarzt\r\n" +
		"DTSTART;TZID=Europe/Berlin:20260311T090000\r\nDTEND;TZID=Europe/Berlin:20260311T100000\r\nEND:VEVENT\r\n"),
	// A daily task from 8:00 to 17:00 UTC on five days.
	"/dav/calendars/anna/tasks/daily.ics": vcalendar("BEGIN:VTODO\r\nUID:daily\r\nDTSTAMP:20260101T000000Z\r\n" +
		"DTSTART:20260309T080000Z\r\nDUE:20260309T170000Z\r\nRRULE:FREQ=DAILY;COUNT=5\r\nSUMMARY:Blumen gießen\r\nEND:VTODO\r\n"),
}

func putExpandObjects(t *testing.T, ts *testServer) {
	t.Helper()
	for path, data := range expandObjects {
		wantStatus(t, "PUT "+path, ts.do(t, "anna", "PUT", path, data, "Content-Type", "text/calendar"), http.StatusCreated)
	}
}

// calendarQuery returns a calendar-query for component name in the time
// range, with calendarData as the calendar-data element.
func calendarQuery(name, start, end, calendarData string) string {
	return `<C:calendar-query xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><D:getetag/>` + calendarData +
		`</D:prop><C:filter><C:comp-filter name="VCALENDAR"><C:comp-filter name="` + name + `"><C:time-range start="` + start +
		`" end="` + end + `"/></C:comp-filter></C:comp-filter></C:filter></C:calendar-query>`
}

// calendarDataOf returns the calendar-data of every response in a
// multistatus body by href.
func calendarDataOf(t *testing.T, body string) map[string]string {
	t.Helper()
	var ms struct {
		Responses []struct {
			Href string `xml:"href"`
			Data string `xml:"propstat>prop>calendar-data"`
		} `xml:"response"`
	}
	if err := xml.Unmarshal([]byte(body), &ms); err != nil {
		t.Fatalf("parsing multistatus %s: %v", body, err)
	}
	out := map[string]string{}
	for _, r := range ms.Responses {
		out[r.Href] = r.Data
	}
	return out
}

// components returns one line per component of data: its name, its
// RECURRENCE-ID, DTSTART, DTEND, DUE and SUMMARY lines, and the names of
// its subcomponents.
func components(t *testing.T, data string) []string {
	t.Helper()
	cal, err := decodeOneCalendar([]byte(data))
	if err != nil {
		t.Fatalf("parsing calendar-data %q: %v", data, err)
	}
	var out []string
	for _, c := range cal.Children {
		parts := []string{c.Name}
		for _, name := range []string{"RECURRENCE-ID", "DTSTART", "DTEND", "DUE", "SUMMARY"} {
			if p := c.Props.Get(name); p != nil {
				parts = append(parts, contentLine(p))
			}
		}
		for _, child := range c.Children {
			parts = append(parts, child.Name)
		}
		out = append(out, strings.Join(parts, " "))
	}
	return out
}

// TestExpandCalendarQuery checks each occurrence's component after
// expansion: dates stay dates, floating and TZID times become UTC, EXDATE
// removes an occurrence, overrides replace theirs, and VTODO moves DUE.
func TestExpandCalendarQuery(t *testing.T) {
	ts := newTestServer(t, "anna")
	putExpandObjects(t, ts)

	expand := `<C:calendar-data><C:expand start="20260309T000000Z" end="20260319T000000Z"/></C:calendar-data>`
	r := ts.do(t, "anna", "REPORT", "/dav/calendars/anna/calendar/", calendarQuery("VEVENT", "20260309T000000Z", "20260319T000000Z", expand), "Depth", "1")
	wantStatus(t, "calendar-query with expand", r, http.StatusMultiStatus)
	got := calendarDataOf(t, r.body)

	want := map[string][]string{
		"/dav/calendars/anna/calendar/birthday.ics": {
			"VEVENT RECURRENCE-ID;VALUE=DATE:20260312 DTSTART;VALUE=DATE:20260312 DTEND;VALUE=DATE:20260313 SUMMARY:Geburtstag",
		},
		"/dav/calendars/anna/calendar/lunch.ics": {
			"VEVENT RECURRENCE-ID:20260310T120000Z DTSTART:20260310T120000Z DTEND:20260310T130000Z SUMMARY:Mittagessen",
			"VEVENT RECURRENCE-ID:20260311T120000Z DTSTART:20260311T120000Z DTEND:20260311T130000Z SUMMARY:Mittagessen",
			"VEVENT RECURRENCE-ID:20260312T120000Z DTSTART:20260312T120000Z DTEND:20260312T130000Z SUMMARY:Mittagessen",
		},
		"/dav/calendars/anna/calendar/choir.ics": {
			"VEVENT RECURRENCE-ID:20260422T170000Z DTSTART:20260313T090000Z DTEND:20260313T103000Z SUMMARY:Chor vorgezogen",
			"VEVENT RECURRENCE-ID:20260316T180000Z DTSTART:20260316T180000Z DTEND:20260316T193000Z SUMMARY:Chor VALARM",
			"VEVENT RECURRENCE-ID:20260318T180000Z DTSTART:20260318T180000Z DTEND:20260318T193000Z SUMMARY:Chor VALARM",
		},
		"/dav/calendars/anna/calendar/single.ics": {
			"VEVENT DTSTART:20260311T080000Z DTEND:20260311T090000Z SUMMARY:Zahnarzt",
		},
	}
	if len(got) != len(want) {
		t.Errorf("calendar-query with expand returned %d objects, want %d: %s", len(got), len(want), r.body)
	}
	for href, comps := range want {
		data, ok := got[href]
		if !ok {
			t.Errorf("%s: missing from the result", href)
			continue
		}
		if g := components(t, data); !reflect.DeepEqual(g, comps) {
			t.Errorf("%s expanded:\ngot  %q\nwant %q", href, g, comps)
		}
		for _, forbidden := range []string{"RRULE", "EXDATE", "RDATE", "VTIMEZONE", "TZID"} {
			if strings.Contains(data, forbidden) {
				t.Errorf("%s expanded contains %s: %q", href, forbidden, data)
			}
		}
		if !strings.HasPrefix(data, "BEGIN:VCALENDAR\r\n") || !strings.Contains(data, "PRODID:-//Heimwolke//Test//EN\r\n") {
			t.Errorf("%s expanded lost the VCALENDAR properties: %q", href, data)
		}
	}

	expandTasks := `<C:calendar-data><C:expand start="20260310T000000Z" end="20260312T000000Z"/></C:calendar-data>`
	r = ts.do(t, "anna", "REPORT", "/dav/calendars/anna/tasks/", calendarQuery("VTODO", "20260310T000000Z", "20260312T000000Z", expandTasks), "Depth", "1")
	wantStatus(t, "VTODO calendar-query with expand", r, http.StatusMultiStatus)
	wantTasks := []string{
		"VTODO RECURRENCE-ID:20260310T080000Z DTSTART:20260310T080000Z DUE:20260310T170000Z SUMMARY:Blumen gießen",
		"VTODO RECURRENCE-ID:20260311T080000Z DTSTART:20260311T080000Z DUE:20260311T170000Z SUMMARY:Blumen gießen",
	}
	if g := components(t, calendarDataOf(t, r.body)["/dav/calendars/anna/tasks/daily.ics"]); !reflect.DeepEqual(g, wantTasks) {
		t.Errorf("daily.ics expanded:\ngot  %q\nwant %q", g, wantTasks)
	}
}

// TestExpandPlainRequestByteExact guards against expansion leaking into
// requests without expand, which must return the stored bytes.
func TestExpandPlainRequestByteExact(t *testing.T) {
	ts := newTestServer(t, "anna")
	putExpandObjects(t, ts)

	r := ts.do(t, "anna", "REPORT", "/dav/calendars/anna/calendar/", calendarQuery("VEVENT", "20260309T000000Z", "20260319T000000Z", `<C:calendar-data/>`), "Depth", "1")
	wantStatus(t, "calendar-query without expand", r, http.StatusMultiStatus)
	got := calendarDataOf(t, r.body)
	if len(got) != 4 {
		t.Errorf("calendar-query without expand returned %d objects, want 4: %s", len(got), r.body)
	}
	for href, data := range got {
		if data != expandObjects[href] {
			t.Errorf("%s without expand = %q, want the stored %q", href, data, expandObjects[href])
		}
	}
}

// TestExpandMultiget checks expand in calendar-multiget, where no filter
// selects the objects: an object without occurrences in the range comes
// back as a VCALENDAR without components.
func TestExpandMultiget(t *testing.T) {
	ts := newTestServer(t, "anna")
	putExpandObjects(t, ts)

	multiget := `<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><C:calendar-data>` +
		`<C:expand start="20260316T000000Z" end="20260317T000000Z"/></C:calendar-data></D:prop>` +
		`<D:href>/dav/calendars/anna/calendar/choir.ics</D:href><D:href>/dav/calendars/anna/calendar/lunch.ics</D:href></C:calendar-multiget>`
	r := ts.do(t, "anna", "REPORT", "/dav/calendars/anna/calendar/", multiget, "Depth", "1")
	wantStatus(t, "calendar-multiget with expand", r, http.StatusMultiStatus)
	got := calendarDataOf(t, r.body)

	wantChoir := []string{"VEVENT RECURRENCE-ID:20260316T180000Z DTSTART:20260316T180000Z DTEND:20260316T193000Z SUMMARY:Chor VALARM"}
	if g := components(t, got["/dav/calendars/anna/calendar/choir.ics"]); !reflect.DeepEqual(g, wantChoir) {
		t.Errorf("choir.ics expanded:\ngot  %q\nwant %q", g, wantChoir)
	}
	if g := components(t, got["/dav/calendars/anna/calendar/lunch.ics"]); len(g) != 0 {
		t.Errorf("lunch.ics expanded to %q, want no components", g)
	}
}

// TestLimitRecurrenceSet checks that limit-recurrence-set keeps the master
// and VTIMEZONE and drops the overrides whose old and new times are both
// outside the range.
func TestLimitRecurrenceSet(t *testing.T) {
	ts := newTestServer(t, "anna")
	putExpandObjects(t, ts)
	choir := "/dav/calendars/anna/calendar/choir.ics"
	query := func(start, end string) string {
		return `<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop><C:calendar-data>` +
			`<C:limit-recurrence-set start="` + start + `" end="` + end + `"/></C:calendar-data></D:prop>` +
			`<D:href>` + choir + `</D:href></C:calendar-multiget>`
	}
	master := "VEVENT DTSTART;TZID=Europe/Berlin:20260302T190000 DTEND;TZID=Europe/Berlin:20260302T203000 SUMMARY:Chor VALARM"
	movedAway := "VEVENT RECURRENCE-ID;TZID=Europe/Berlin:20260311T190000 DTSTART;TZID=Europe/Berlin:20260420T190000 DTEND;TZID=Europe/Berlin:20260420T203000 SUMMARY:Chor im April"
	movedHere := "VEVENT RECURRENCE-ID;TZID=Europe/Berlin:20260422T190000 DTSTART;TZID=Europe/Berlin:20260313T100000 DTEND;TZID=Europe/Berlin:20260313T113000 SUMMARY:Chor vorgezogen"

	tests := []struct {
		name, start, end string
		want             []string
	}{
		{"old time of the moved-away occurrence", "20260311T000000Z", "20260312T000000Z", []string{"VTIMEZONE STANDARD DAYLIGHT", master, movedAway}},
		{"new time of the moved-here occurrence", "20260313T000000Z", "20260314T000000Z", []string{"VTIMEZONE STANDARD DAYLIGHT", master, movedHere}},
		{"no override", "20260601T000000Z", "20260701T000000Z", []string{"VTIMEZONE STANDARD DAYLIGHT", master}},
	}
	for _, tt := range tests {
		r := ts.do(t, "anna", "REPORT", "/dav/calendars/anna/calendar/", query(tt.start, tt.end), "Depth", "1")
		wantStatus(t, tt.name, r, http.StatusMultiStatus)
		data := calendarDataOf(t, r.body)[choir]
		if g := components(t, data); !reflect.DeepEqual(g, tt.want) {
			t.Errorf("%s:\ngot  %q\nwant %q", tt.name, g, tt.want)
		}
		if !strings.Contains(data, "RRULE:FREQ=WEEKLY;BYDAY=MO,WE") {
			t.Errorf("%s: master lost its RRULE: %q", tt.name, data)
		}
	}

	r := ts.do(t, "anna", "REPORT", "/dav/calendars/anna/calendar/", query("20260301T000000Z", "20260501T000000Z"), "Depth", "1")
	if data := calendarDataOf(t, r.body)[choir]; data != expandObjects[choir] {
		t.Errorf("limit-recurrence-set that keeps every override = %q, want the stored %q", data, expandObjects[choir])
	}
}

// TestExpandBadRange checks that an invalid expand or limit-recurrence-set
// range gets 400 with a message that names the problem.
func TestExpandBadRange(t *testing.T) {
	ts := newTestServer(t, "anna")
	putExpandObjects(t, ts)

	tests := []struct {
		name, calendarData, message string
	}{
		{"missing end", `<C:expand start="20260309T000000Z"/>`, "needs both start and end"},
		{"missing start", `<C:expand end="20260309T000000Z"/>`, "needs both start and end"},
		{"end before start", `<C:expand start="20260309T000000Z" end="20260308T000000Z"/>`, "must be after start"},
		{"empty range", `<C:expand start="20260309T000000Z" end="20260309T000000Z"/>`, "must be after start"},
		{"local time", `<C:expand start="20260309T000000" end="20260310T000000Z"/>`, `"20260309T000000"`},
		{"ISO 8601 form", `<C:expand start="2026-03-09T00:00:00Z" end="20260310T000000Z"/>`, `"2026-03-09T00:00:00Z"`},
		{"limit-recurrence-set without end", `<C:limit-recurrence-set start="20260309T000000Z"/>`, "limit-recurrence-set needs both"},
		{"expand and limit-recurrence-set", `<C:expand start="20260309T000000Z" end="20260310T000000Z"/><C:limit-recurrence-set start="20260309T000000Z" end="20260310T000000Z"/>`, "not both"},
	}
	for _, tt := range tests {
		calendarData := `<C:calendar-data>` + tt.calendarData + `</C:calendar-data>`
		requests := map[string]string{
			"calendar-query": calendarQuery("VEVENT", "20260309T000000Z", "20260319T000000Z", calendarData),
			"calendar-multiget": `<C:calendar-multiget xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav"><D:prop>` + calendarData +
				`</D:prop><D:href>/dav/calendars/anna/calendar/choir.ics</D:href></C:calendar-multiget>`,
		}
		for report, body := range requests {
			r := ts.do(t, "anna", "REPORT", "/dav/calendars/anna/calendar/", body, "Depth", "1")
			if r.status != http.StatusBadRequest {
				t.Errorf("%s, %s: got status %d, want 400; body: %s", report, tt.name, r.status, r.body)
				continue
			}
			if !strings.Contains(r.body, tt.message) {
				t.Errorf("%s, %s: got message %q, want it to contain %q", report, tt.name, r.body, tt.message)
			}
		}
	}
}

// TestFastRuleFarFromStart guards against rules with a short period and
// no end dropping out of queries far after DTSTART, once the occurrences
// before the range exceed maxInstances.
func TestFastRuleFarFromStart(t *testing.T) {
	ts := newTestServer(t, "anna")
	objects := map[string]string{
		"quarter.ics": vcalendar("BEGIN:VEVENT\r\nUID:quarter\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260101T000000Z\r\n" +
			"DURATION:PT5M\r\nRRULE:FREQ=MINUTELY;INTERVAL=15\r\nSUMMARY:Viertelstunde\r\nEND:VEVENT\r\n"),
		"seconds.ics": vcalendar("BEGIN:VEVENT\r\nUID:seconds\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260101T000000Z\r\n" +
			"RRULE:FREQ=SECONDLY;INTERVAL=30;UNTIL=20400101T000000Z\r\nSUMMARY:Puls\r\nEND:VEVENT\r\n"),
		"everysecond.ics": vcalendar("BEGIN:VEVENT\r\nUID:everysecond\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260101T100000Z\r\n" +
			"RRULE:FREQ=SECONDLY\r\nSUMMARY:Takt\r\nEND:VEVENT\r\n"),
		"hourly.ics": vcalendar(vtimezoneBerlin + "BEGIN:VEVENT\r\nUID:hourly\r\nDTSTAMP:20260101T000000Z\r\n" +
			"DTSTART;TZID=Europe/Berlin:20260101T003000\r\nDTEND;TZID=Europe/Berlin:20260101T004000\r\nRRULE:FREQ=HOURLY;INTERVAL=5\r\nSUMMARY:Lüften\r\nEND:VEVENT\r\n"),
	}
	for name, data := range objects {
		wantStatus(t, "PUT "+name, ts.do(t, "anna", "PUT", "/dav/calendars/anna/calendar/"+name, data), http.StatusCreated)
	}

	tests := []struct {
		name, object, start, end string
		want                     []string // DTSTART values
	}{
		{"minutely in 2030", "quarter.ics", "20300601T100000Z", "20300601T103100Z", []string{"20300601T100000Z", "20300601T101500Z", "20300601T103000Z"}},
		{"hourly in 2030", "hourly.ics", "20300601T100000Z", "20300601T103100Z", []string{"20300601T103000Z"}},
		// Berlin switches to summer time at 01:00 UTC on 28 March 2027,
		// and rrule-go steps local time, so 01:30 CET is followed by
		// 06:30 CEST.
		{"hourly across summer time", "hourly.ics", "20270327T230000Z", "20270328T090000Z", []string{"20270328T003000Z", "20270328T043000Z"}},
		{"secondly in 2035", "seconds.ics", "20350101T000000Z", "20350101T000100Z", []string{"20350101T000000Z", "20350101T000030Z"}},
		{"secondly at UNTIL", "seconds.ics", "20391231T235950Z", "20400101T000010Z", []string{"20400101T000000Z"}},
		{"secondly after UNTIL", "seconds.ics", "20400101T000010Z", "20400101T000100Z", nil},
		// Two days of margin would be 172,800 occurrences, more than
		// maxInstances, so SECONDLY starts three hours before the range.
		{"every second, days later", "everysecond.ics", "20260105T120000Z", "20260105T120003Z", []string{"20260105T120000Z", "20260105T120001Z", "20260105T120002Z"}},
	}
	for _, tt := range tests {
		calendarData := `<C:calendar-data><C:expand start="` + tt.start + `" end="` + tt.end + `"/></C:calendar-data>`
		r := ts.do(t, "anna", "REPORT", "/dav/calendars/anna/calendar/", calendarQuery("VEVENT", tt.start, tt.end, calendarData), "Depth", "1")
		wantStatus(t, tt.name, r, http.StatusMultiStatus)
		data, ok := calendarDataOf(t, r.body)["/dav/calendars/anna/calendar/"+tt.object]
		if !ok {
			if tt.want != nil {
				t.Errorf("%s: %s did not match, want occurrences %v", tt.name, tt.object, tt.want)
			}
			continue
		}
		cal, err := decodeOneCalendar([]byte(data))
		if err != nil {
			t.Fatalf("%s: parsing %s: %v", tt.name, tt.object, err)
		}
		var got []string
		for _, c := range cal.Children {
			got = append(got, c.Props.Get("DTSTART").Value)
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("%s: %s got occurrences %v, want %v", tt.name, tt.object, got, tt.want)
		}
	}
}

// TestRuleStartNearKeepsOccurrences compares the occurrences in a range
// of rules whose DTSTART ruleStartNear moved with those of the original
// rules, which rrule-go iterates from DTSTART on.
func TestRuleStartNearKeepsOccurrences(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		rule    string
		dtstart time.Time
		from    time.Time
		span    time.Duration
	}{
		{"FREQ=MINUTELY;INTERVAL=13", time.Date(2026, 1, 1, 0, 0, 7, 0, berlin), time.Date(2027, 3, 27, 12, 0, 0, 0, time.UTC), 72 * time.Hour},
		{"FREQ=HOURLY;INTERVAL=5", time.Date(2026, 1, 1, 0, 30, 0, 0, berlin), time.Date(2029, 10, 27, 0, 0, 0, 0, time.UTC), 72 * time.Hour},
		// 02:30 does not exist in Berlin on 29 March 2026.
		{"FREQ=DAILY", time.Date(2020, 1, 1, 2, 30, 0, 0, berlin), time.Date(2026, 3, 31, 4, 0, 0, 0, time.UTC), 72 * time.Hour},
		{"FREQ=SECONDLY;INTERVAL=97;UNTIL=20261001T000000Z", time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC), time.Hour},
	}
	for _, tt := range tests {
		opt, err := rrule.StrToROptionInLocation(tt.rule, tt.dtstart.Location())
		if err != nil {
			t.Fatal(err)
		}
		moved := ruleStartNear(*opt, tt.dtstart, tt.from)
		if !moved.Before(tt.from) || tt.from.Sub(moved) > 4*24*time.Hour {
			t.Errorf("%s: DTSTART moved to %v, want within four days before %v", tt.rule, moved, tt.from)
		}

		occurrences := func(dtstart time.Time) []time.Time {
			o := *opt
			o.Dtstart = dtstart
			r, err := rrule.NewRRule(o)
			if err != nil {
				t.Fatal(err)
			}
			return r.Between(tt.from, tt.from.Add(tt.span), true)
		}
		want := occurrences(tt.dtstart)
		got := occurrences(moved)
		if len(want) == 0 {
			t.Fatalf("%s: the original rule has no occurrences in the range", tt.rule)
		}
		if len(got) != len(want) {
			t.Errorf("%s: moved rule yields %d occurrences, want %d", tt.rule, len(got), len(want))
			continue
		}
		for i := range want {
			if !got[i].Equal(want[i]) {
				t.Errorf("%s: occurrence %d of the moved rule is %v, want %v", tt.rule, i, got[i], want[i])
				break
			}
		}
	}
}

// TestRuleStartNearKeepsOtherRules checks that rules whose occurrences
// are not evenly spaced keep their DTSTART.
func TestRuleStartNearKeepsOtherRules(t *testing.T) {
	dtstart := time.Date(2026, 1, 1, 9, 0, 0, 0, time.UTC)
	from := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, rule := range []string{"FREQ=MINUTELY;COUNT=100000", "FREQ=MINUTELY;BYHOUR=9", "FREQ=WEEKLY", "FREQ=MONTHLY;BYMONTHDAY=31", "FREQ=DAILY;BYDAY=MO"} {
		opt, err := rrule.StrToROptionInLocation(rule, time.UTC)
		if err != nil {
			t.Fatal(err)
		}
		if got := ruleStartNear(*opt, dtstart, from); !got.Equal(dtstart) {
			t.Errorf("%s: DTSTART moved to %v, want it kept at %v", rule, got, dtstart)
		}
	}
}
