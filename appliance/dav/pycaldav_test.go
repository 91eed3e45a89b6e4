package dav

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"sort"
	"testing"

	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// pythonCalDAV is /usr/bin/python3 with Debian's python3-caldav, because
// the python3 on PATH may be another interpreter without Debian's modules.
func pythonCalDAV(t *testing.T) string {
	t.Helper()
	const python = "/usr/bin/python3"
	if _, err := os.Stat(python); err != nil {
		testpeer.Require(t, "python3-caldav-missing", "python3-caldav")
	}
	if err := exec.Command(python, "-c", "import caldav").Run(); err != nil {
		testpeer.Require(t, "python3-caldav-missing", "python3-caldav")
	}
	return python
}

// recurrenceScript creates recurring events with python3-caldav, runs
// time-range searches that cut through the recurrences, and prints the
// UIDs that the server matched and the occurrences that the server
// expanded, as JSON.
const recurrenceScript = `
import caldav, datetime, json, sys
url, user, password = sys.argv[1:4]
client = caldav.DAVClient(url, username=user, password=password)
principal = client.principal()
cal = principal.make_calendar(name="Wiederholungen", cal_id="wiederholungen")

def vcal(body):
    return "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//py//EN\r\n" + body + "END:VCALENDAR\r\n"

tz = ("BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\n"
      "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\n"
      "BEGIN:DAYLIGHT\r\nDTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\n"
      "TZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n")

# Mondays 10:00 Berlin; 9 March is cancelled, 16 March moved to Wednesday 18 March.
cal.save_event(vcal(tz +
    "BEGIN:VEVENT\r\nUID:weekly-berlin\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Chorprobe\r\n"
    "DTSTART;TZID=Europe/Berlin:20260105T100000\r\nDTEND;TZID=Europe/Berlin:20260105T113000\r\n"
    "RRULE:FREQ=WEEKLY;BYDAY=MO\r\nEXDATE;TZID=Europe/Berlin:20260309T100000\r\nEND:VEVENT\r\n"
    "BEGIN:VEVENT\r\nUID:weekly-berlin\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Chorprobe (verlegt)\r\n"
    "RECURRENCE-ID;TZID=Europe/Berlin:20260316T100000\r\n"
    "DTSTART;TZID=Europe/Berlin:20260318T100000\r\nDTEND;TZID=Europe/Berlin:20260318T113000\r\nEND:VEVENT\r\n"))
# Three all-day days in February: over before the queries.
cal.save_event(vcal("BEGIN:VEVENT\r\nUID:daily-count\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Skiurlaub\r\n"
    "DTSTART;VALUE=DATE:20260201\r\nRRULE:FREQ=DAILY;COUNT=3\r\nEND:VEVENT\r\n"))
# A floating event.
cal.save_event(vcal("BEGIN:VEVENT\r\nUID:floating\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Mittagessen\r\n"
    "DTSTART:20260310T120000\r\nDTEND:20260310T130000\r\nEND:VEVENT\r\n"))
# A birthday every 12 March since 2000, without end.
cal.save_event(vcal("BEGIN:VEVENT\r\nUID:birthday\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Geburtstag\r\n"
    "DTSTART;VALUE=DATE:20000312\r\nDTEND;VALUE=DATE:20000313\r\nRRULE:FREQ=YEARLY\r\nEND:VEVENT\r\n"))
# Weekly until the end of February.
cal.save_event(vcal("BEGIN:VEVENT\r\nUID:weekly-until\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Kurs\r\n"
    "DTSTART:20260106T180000Z\r\nDTEND:20260106T190000Z\r\nRRULE:FREQ=WEEKLY;UNTIL=20260228T000000Z\r\nEND:VEVENT\r\n"))

def day(s):
    return datetime.datetime.strptime(s, "%Y-%m-%d").replace(tzinfo=datetime.timezone.utc)

out = {}
for name, start, end in [("mar9", "2026-03-09", "2026-03-10"), ("mar10to13", "2026-03-10", "2026-03-13"),
                         ("mar16", "2026-03-16", "2026-03-17"), ("mar18", "2026-03-18", "2026-03-19"),
                         ("feb", "2026-02-02", "2026-02-03"), ("feb3", "2026-02-03", "2026-02-04"), ("mar23", "2026-03-23", "2026-03-24")]:
    matched = cal.search(start=day(start), end=day(end), event=True, expand=False)
    uids = sorted(str(o.icalendar_component["UID"]) for o in matched)
    expanded = cal.search(start=day(start), end=day(end), event=True, expand=True)
    starts = sorted(o.icalendar_component["UID"] + "@" + o.icalendar_component["DTSTART"].dt.isoformat() for o in expanded)
    out[name] = {"uids": uids, "occurrences": starts}
json.dump(out, sys.stdout)
`

// TestPythonCalDAVRecurrence checks that time-range queries honour RRULE,
// EXDATE, RECURRENCE-ID overrides, all-day, floating and time zones.
func TestPythonCalDAVRecurrence(t *testing.T) {
	python := pythonCalDAV(t)
	ts := newTestServer(t, "anna")

	script := filepath.Join(t.TempDir(), "recurrence.py")
	if err := os.WriteFile(script, []byte(recurrenceScript), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, script, ts.URL+"/dav/", "anna", ts.passwords["anna"])
	cmd.Env = append(os.Environ(), "TZ=UTC")
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("python3-caldav script failed: %v\n%s", err, stderr)
	}

	var got map[string]struct {
		UIDs        []string `json:"uids"`
		Occurrences []string `json:"occurrences"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("parsing script output %q: %v", out, err)
	}

	want := map[string][]string{
		"mar9":      nil, // the Monday is cancelled by EXDATE
		"mar10to13": {"birthday", "floating"},
		"mar16":     nil, // this Monday moved to Wednesday
		"mar18":     {"weekly-berlin"},
		"feb":       {"daily-count", "weekly-berlin"}, // 2 February is a Monday
		"mar23":     {"weekly-berlin"},
		"feb3":      {"daily-count", "weekly-until"},
	}
	for name, uids := range want {
		sort.Strings(uids)
		if g := got[name].UIDs; !reflect.DeepEqual(g, uids) && !(len(g) == 0 && len(uids) == 0) {
			t.Errorf("time range %s: server matched %v, want %v", name, g, uids)
		}
	}

	// The server expands into UTC and keeps all-day dates as dates.
	wantOccurrences := map[string][]string{
		"mar18": {"weekly-berlin@2026-03-18T09:00:00+00:00"},
		"mar23": {"weekly-berlin@2026-03-23T09:00:00+00:00"},
		"feb":   {"daily-count@2026-02-02", "weekly-berlin@2026-02-02T09:00:00+00:00"},
	}
	for name, occ := range wantOccurrences {
		if g := got[name].Occurrences; !reflect.DeepEqual(g, occ) {
			t.Errorf("time range %s: expanded %v, want %v", name, g, occ)
		}
	}
}

// syncScript runs an initial sync-collection with python3-caldav, changes
// the calendar, and runs an incremental one with the returned token.
const syncScript = `
import caldav, json, sys
url, user, password = sys.argv[1:4]
client = caldav.DAVClient(url, username=user, password=password)
cal = client.calendar(url=url + "calendars/" + user + "/calendar/")

def vcal(uid, summary):
    return ("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//py//EN\r\nBEGIN:VEVENT\r\nUID:" + uid +
            "\r\nDTSTAMP:20260101T000000Z\r\nDTSTART:20260401T100000Z\r\nDURATION:PT1H\r\nSUMMARY:" + summary +
            "\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n")

kept = cal.save_event(vcal("kept", "Bleibt"))
changed = cal.save_event(vcal("changed", "Vorher"))
gone = cal.save_event(vcal("gone", "Weg"))

initial = cal.objects_by_sync_token(load_objects=True)
first = sorted(str(o.icalendar_component["UID"]) for o in initial)

changed.data = vcal("changed", "Nachher")
changed.save()
gone.delete()
cal.save_event(vcal("new", "Neu"))

updated, deleted = initial.sync()
out = {
    "initial": first,
    "updated": sorted(str(o.icalendar_component["UID"]) for o in updated),
    "deleted": len(deleted),
    "after": sorted(str(o.icalendar_component["UID"]) + ":" + str(o.icalendar_component["SUMMARY"]) for o in initial),
    "token_changed": initial.sync_token != None,
}
json.dump(out, sys.stdout)
`

// TestPythonCalDAVSyncCollection checks initial and incremental
// sync-collection through python3-caldav's token handling.
func TestPythonCalDAVSyncCollection(t *testing.T) {
	python := pythonCalDAV(t)
	ts := newTestServer(t, "anna")

	script := filepath.Join(t.TempDir(), "sync.py")
	if err := os.WriteFile(script, []byte(syncScript), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(python, script, ts.URL+"/dav/", "anna", ts.passwords["anna"]).Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("python3-caldav script failed: %v\n%s", err, stderr)
	}
	var got struct {
		Initial []string `json:"initial"`
		Updated []string `json:"updated"`
		Deleted int      `json:"deleted"`
		After   []string `json:"after"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("parsing script output %q: %v", out, err)
	}
	if want := []string{"changed", "gone", "kept"}; !reflect.DeepEqual(got.Initial, want) {
		t.Errorf("initial sync = %v, want %v", got.Initial, want)
	}
	if want := []string{"changed", "new"}; !reflect.DeepEqual(got.Updated, want) {
		t.Errorf("incremental sync updated %v, want %v", got.Updated, want)
	}
	if got.Deleted != 1 {
		t.Errorf("incremental sync deleted %d objects, want 1", got.Deleted)
	}
	if want := []string{"changed:Nachher", "kept:Bleibt", "new:Neu"}; !reflect.DeepEqual(got.After, want) {
		t.Errorf("objects after incremental sync = %v, want %v", got.After, want)
	}
}

// expandScript stores a weekly event in Europe/Berlin with one EXDATE and
// one moved occurrence. It then requests the occurrences of four weeks
// through search(expand=True) and the deprecated date_search, and prints
// as JSON what each call returned and whether its REPORT carried
// CALDAV:expand. python3-caldav 0.11 expands on its own when RRULE or
// EXDATE come back, so the test checks for traces of that fallback.
const expandScript = `
import caldav, datetime, json, sys
url, user, password = sys.argv[1:4]
client = caldav.DAVClient(url, username=user, password=password)
reports = []
plain_report = client.report
def report(url, query="", depth=0):
    reports.append(query.decode() if isinstance(query, bytes) else str(query))
    return plain_report(url, query, depth)
client.report = report
cal = client.calendar(url=url + "calendars/" + user + "/calendar/")

tz = ("BEGIN:VTIMEZONE\r\nTZID:Europe/Berlin\r\nBEGIN:STANDARD\r\nDTSTART:19701025T030000\r\n"
      "RRULE:FREQ=YEARLY;BYMONTH=10;BYDAY=-1SU\r\nTZOFFSETFROM:+0200\r\nTZOFFSETTO:+0100\r\nEND:STANDARD\r\n"
      "BEGIN:DAYLIGHT\r\nDTSTART:19700329T020000\r\nRRULE:FREQ=YEARLY;BYMONTH=3;BYDAY=-1SU\r\n"
      "TZOFFSETFROM:+0100\r\nTZOFFSETTO:+0200\r\nEND:DAYLIGHT\r\nEND:VTIMEZONE\r\n")
# Mondays 10:00 Berlin from 2 March; 16 March is cancelled, 23 March moves
# to Tuesday 14:00. Summer time starts on 29 March.
cal.save_event("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//py//EN\r\n" + tz +
    "BEGIN:VEVENT\r\nUID:team\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Teamtreffen\r\n"
    "DTSTART;TZID=Europe/Berlin:20260302T100000\r\nDTEND;TZID=Europe/Berlin:20260302T110000\r\n"
    "RRULE:FREQ=WEEKLY\r\nEXDATE;TZID=Europe/Berlin:20260316T100000\r\nEND:VEVENT\r\n"
    "BEGIN:VEVENT\r\nUID:team\r\nDTSTAMP:20260101T000000Z\r\nSUMMARY:Teamtreffen (verlegt)\r\n"
    "RECURRENCE-ID;TZID=Europe/Berlin:20260323T100000\r\n"
    "DTSTART;TZID=Europe/Berlin:20260324T140000\r\nDTEND;TZID=Europe/Berlin:20260324T150000\r\nEND:VEVENT\r\n"
    "END:VCALENDAR\r\n")

start = datetime.datetime(2026, 3, 9, tzinfo=datetime.timezone.utc)
end = datetime.datetime(2026, 4, 7, tzinfo=datetime.timezone.utc)

def occurrence(c):
    rid = c.get("RECURRENCE-ID")
    if isinstance(rid, list):  # python3-caldav's fallback can add a second one
        rid = rid[0]
    return "%s|%s|%s" % (rid.dt.isoformat() if rid else "-", c["DTSTART"].dt.isoformat(), c["SUMMARY"])

def leftovers(data):
    return sorted(w for w in ("RRULE", "EXDATE", "VTIMEZONE", "TZID") if w in data)

out = {}
del reports[:]
found = cal.search(start=start, end=end, event=True, expand=True)
out["search"] = {
    "expand_sent": any("expand" in r for r in reports),
    "leftovers": sorted(set(w for o in found for w in leftovers(o.data))),
    "occurrences": sorted(occurrence(o.icalendar_component) for o in found),
}
del reports[:]
found = cal.date_search(start=start, end=end, expand=True)
raw = [o.data for o in found]
out["date_search"] = {
    "expand_sent": any("expand" in r for r in reports),
    "leftovers": sorted(set(w for d in raw for w in leftovers(d))),
    "occurrences": sorted(occurrence(c) for o in found for c in o.icalendar_instance.walk("VEVENT")),
}
json.dump(out, sys.stdout)
`

// TestPythonCalDAVExpand checks server-side expansion (RFC 4791 section
// 9.6.5) through python3-caldav: occurrences in UTC with RECURRENCE-ID,
// the EXDATE left out, the moved occurrence in place of the generated
// one, and the change of UTC offset at the start of summer time.
func TestPythonCalDAVExpand(t *testing.T) {
	python := pythonCalDAV(t)
	ts := newTestServer(t, "anna")
	out := runPythonScript(t, python, expandScript, ts.URL+"/dav/", "anna", ts.passwords["anna"])

	var got map[string]struct {
		ExpandSent  bool     `json:"expand_sent"`
		Leftovers   []string `json:"leftovers"`
		Occurrences []string `json:"occurrences"`
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("parsing script output %q: %v", out, err)
	}

	want := []string{
		"2026-03-09T09:00:00+00:00|2026-03-09T09:00:00+00:00|Teamtreffen",
		"2026-03-23T09:00:00+00:00|2026-03-24T13:00:00+00:00|Teamtreffen (verlegt)",
		"2026-03-30T08:00:00+00:00|2026-03-30T08:00:00+00:00|Teamtreffen",
		"2026-04-06T08:00:00+00:00|2026-04-06T08:00:00+00:00|Teamtreffen",
	}
	for _, call := range []string{"search", "date_search"} {
		g, ok := got[call]
		if !ok {
			t.Errorf("%s: no result in script output %s", call, out)
			continue
		}
		if !g.ExpandSent {
			t.Errorf("%s: REPORT carried no CALDAV:expand", call)
		}
		if len(g.Leftovers) > 0 {
			t.Errorf("%s: expanded data contains %v, want none of RRULE, EXDATE, VTIMEZONE, TZID", call, g.Leftovers)
		}
		if !reflect.DeepEqual(g.Occurrences, want) {
			t.Errorf("%s: got occurrences %q, want %q", call, g.Occurrences, want)
		}
	}
}

// runPythonScript runs script with python and args and returns its
// standard output, or fails the test with its standard error.
func runPythonScript(t *testing.T, python, script string, args ...string) []byte {
	t.Helper()
	path := filepath.Join(t.TempDir(), "script.py")
	if err := os.WriteFile(path, []byte(script), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(python, append([]string{path}, args...)...)
	cmd.Env = append(os.Environ(), "TZ=UTC")
	out, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("python3-caldav script failed: %v\n%s", err, stderr)
	}
	return out
}
