package dav

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// vCardPhoto is a vCard 3.0 with an umlaut, an inline photo and folded
// lines, which the server must return byte for byte.
const vCardPhoto = "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:jürgen-1\r\nFN:Jürgen Müller\r\nN:Müller;Jürgen;;;\r\n" +
	"EMAIL;TYPE=INTERNET:juergen@example.org\r\n" +
	"PHOTO;ENCODING=b;TYPE=JPEG:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8gISIj\r\n" +
	" JCUmJygpKissLS4vMDEyMzQ1Njc4OTo7PD0+P0BBQkNERUZHSElKS0xNTk9QUVJTVFVWV1hZWl\r\n" +
	" tcXV5fYGFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6e3x9fn+AgYKDhIWGh4iJiouMjY6PkJGS\r\n" +
	" k5SVlpeYmZqbnJ2en6ChoqOkpaanqKmqq6ytrq+wsbKztLW2t7i5uru8vb6/wMHCw8TFxsfIyc\r\n" +
	" rLzM3Oz9DR0tPU1dbX2Nna29zd3t/g4eLj5OXm5+jp6uvs7e7v8PHy8/T19vf4+fr7/P3+/w==\r\n" +
	"NOTE:Eine lange Notiz, die über mehrere Zeilen gefaltet wird, weil sie länger als fünfundsiebzig Okt\r\n" +
	" ette ist.\r\nEND:VCARD\r\n"

const vCard4 = "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:urn:uuid:4fbe8971-0bc3-424c-9c26-36c3e1eff6b1\r\nFN:Zoë Ångström\r\nN:Ångström;Zoë;;;\r\nTEL;VALUE=uri;TYPE=cell:tel:+49-30-1234567\r\nEND:VCARD\r\n"

// vdirsyncerEnv runs vdirsyncer, khal and khard with configurations and a
// HOME in a temporary folder.
type vdirsyncerEnv struct {
	dir string
	env []string
}

func newVdirsyncerEnv(t *testing.T, ts *testServer, login string) *vdirsyncerEnv {
	t.Helper()
	testpeer.Require(t, "vdirsyncer", "vdirsyncer")
	testpeer.Require(t, "khal", "khal")
	testpeer.Require(t, "khard", "khard")

	dir := t.TempDir()
	e := &vdirsyncerEnv{dir: dir, env: append(os.Environ(), "HOME="+dir, "XDG_CONFIG_HOME="+dir, "XDG_DATA_HOME="+dir, "TZ=UTC", "LC_ALL=C.UTF-8")}
	config := fmt.Sprintf(`[general]
status_path = "%[1]s/status/"

[pair cal]
a = "cal_local"
b = "cal_remote"
collections = ["calendar"]

[storage cal_local]
type = "filesystem"
path = "%[1]s/cal/"
fileext = ".ics"

[storage cal_remote]
type = "caldav"
url = "%[2]s/dav/"
username = "%[3]s"
password = "%[4]s"

[pair card]
a = "card_local"
b = "card_remote"
collections = ["contacts"]

[storage card_local]
type = "filesystem"
path = "%[1]s/card/"
fileext = ".vcf"

[storage card_remote]
type = "carddav"
url = "%[2]s/dav/"
username = "%[3]s"
password = "%[4]s"
`, dir, ts.URL, login, ts.passwords[login])
	e.write(t, "vdirsyncer.conf", config)

	e.write(t, "khal.conf", fmt.Sprintf(`[calendars]
[[calendar]]
path = %s/cal/calendar/
type = calendar
[sqlite]
path = %s/khal.db
[locale]
local_timezone = UTC
default_timezone = UTC
timeformat = %%H:%%M
dateformat = %%Y-%%m-%%d
longdateformat = %%Y-%%m-%%d
datetimeformat = %%Y-%%m-%%d %%H:%%M
longdatetimeformat = %%Y-%%m-%%d %%H:%%M
`, dir, dir))

	e.write(t, "khard.conf", fmt.Sprintf(`[addressbooks]
[[contacts]]
path = %s/card/contacts/
[general]
editor = /bin/true
merge_editor = /bin/true
`, dir))
	return e
}

func (e *vdirsyncerEnv) write(t *testing.T, name, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(filepath.Join(e.dir, name)), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(e.dir, name), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// run runs a program with the environment and returns its output.
func (e *vdirsyncerEnv) run(t *testing.T, stdin string, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Env = e.env
	cmd.Dir = e.dir
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s failed: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

func (e *vdirsyncerEnv) sync(t *testing.T) {
	t.Helper()
	out := e.run(t, "", "vdirsyncer", "-c", filepath.Join(e.dir, "vdirsyncer.conf"), "sync")
	if strings.Contains(out, "error") {
		t.Fatalf("vdirsyncer sync reported an error:\n%s", out)
	}
}

// localFiles returns the names of the files in a vdir.
func (e *vdirsyncerEnv) localFiles(t *testing.T, vdir string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(e.dir, vdir))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, en := range entries {
		if !strings.HasPrefix(en.Name(), ".") {
			names = append(names, en.Name())
		}
	}
	return names
}

// findLocal returns the file name in vdir whose content contains s.
func (e *vdirsyncerEnv) findLocal(t *testing.T, vdir, s string) string {
	t.Helper()
	for _, name := range e.localFiles(t, vdir) {
		b, err := os.ReadFile(filepath.Join(e.dir, vdir, name))
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), s) {
			return name
		}
	}
	t.Fatalf("no file in %s contains %q", vdir, s)
	return ""
}

var hrefPattern = regexp.MustCompile(`<D:href>([^<]+)</D:href>`)

// serverMembers lists the member hrefs of a collection.
func (ts *testServer) serverMembers(t *testing.T, login, collection string) []string {
	t.Helper()
	r := ts.do(t, login, "PROPFIND", collection, `<D:propfind xmlns:D="DAV:"><D:prop><D:getetag/></D:prop></D:propfind>`, "Depth", "1")
	wantStatus(t, "PROPFIND "+collection, r, http.StatusMultiStatus)
	var members []string
	for _, m := range hrefPattern.FindAllStringSubmatch(r.body, -1) {
		if m[1] != collection && !strings.HasSuffix(m[1], "/principals/"+login+"/") {
			members = append(members, m[1])
		}
	}
	return members
}

// TestVdirsyncerTwoWaySync syncs a calendar and an address book both ways
// with vdirsyncer, changes and deletes items on each side, syncs again,
// and reads the result with khal and khard.
func TestVdirsyncerTwoWaySync(t *testing.T) {
	ts := newTestServer(t, "anna")
	e := newVdirsyncerEnv(t, ts, "anna")
	cal := "/dav/calendars/anna/calendar/"
	book := "/dav/addressbooks/anna/contacts/"

	serverEvent := fmt.Sprintf(testEvent, "server-1", "20260302T090000Z", "20260302T100000Z", "Zahnarzt")
	doomedEvent := fmt.Sprintf(testEvent, "server-2", "20260303T090000Z", "20260303T100000Z", "Wird gelöscht")
	wantStatus(t, "PUT server-1", ts.do(t, "anna", "PUT", cal+"server-1.ics", serverEvent), http.StatusCreated)
	wantStatus(t, "PUT server-2", ts.do(t, "anna", "PUT", cal+"server-2.ics", doomedEvent), http.StatusCreated)
	wantStatus(t, "PUT vCard 3.0", ts.do(t, "anna", "PUT", book+"juergen.vcf", vCardPhoto, "Content-Type", "text/vcard"), http.StatusCreated)
	wantStatus(t, "PUT vCard 4.0", ts.do(t, "anna", "PUT", book+"zoe.vcf", vCard4, "Content-Type", "text/vcard"), http.StatusCreated)

	e.write(t, "cal/calendar/local-1.ics", fmt.Sprintf(testEvent, "local-1", "20260304T150000Z", "20260304T160000Z", "Elternabend"))
	e.write(t, "card/contacts/local-c.vcf", "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:local-c\r\nFN:Local Person\r\nN:Person;Local;;;\r\nEND:VCARD\r\n")

	e.run(t, strings.Repeat("y\n", 10), "vdirsyncer", "-c", filepath.Join(e.dir, "vdirsyncer.conf"), "discover")
	e.sync(t)

	if got := ts.serverMembers(t, "anna", cal); len(got) != 3 {
		t.Fatalf("server calendar after first sync has %d members %v, want 3", len(got), got)
	}
	if got := ts.serverMembers(t, "anna", book); len(got) != 3 {
		t.Fatalf("server address book after first sync has %d members %v, want 3", len(got), got)
	}
	if got := e.localFiles(t, "cal/calendar"); len(got) != 3 {
		t.Fatalf("local calendar after first sync has %d files %v, want 3", len(got), got)
	}

	// Change and delete on both sides.
	edited := fmt.Sprintf(testEvent, "server-1", "20260302T090000Z", "20260302T100000Z", "Zahnarzt verschoben")
	wantStatus(t, "PUT edit server-1", ts.do(t, "anna", "PUT", cal+"server-1.ics", edited), http.StatusNoContent)
	wantStatus(t, "DELETE server-2", ts.do(t, "anna", "DELETE", cal+"server-2.ics", ""), http.StatusNoContent)
	localEvent := e.findLocal(t, "cal/calendar", "UID:local-1")
	e.write(t, "cal/calendar/"+localEvent, fmt.Sprintf(testEvent, "local-1", "20260304T150000Z", "20260304T170000Z", "Elternabend (länger)"))
	zoe := e.findLocal(t, "card/contacts", "Zoë")
	if err := os.Remove(filepath.Join(e.dir, "card/contacts", zoe)); err != nil {
		t.Fatal(err)
	}

	e.sync(t)

	members := ts.serverMembers(t, "anna", cal)
	if len(members) != 2 {
		t.Errorf("server calendar after second sync has %d members %v, want 2", len(members), members)
	}
	var serverLocal string
	for _, m := range members {
		r := ts.do(t, "anna", "GET", m, "")
		if strings.Contains(r.body, "UID:local-1") {
			serverLocal = r.body
		}
	}
	if !strings.Contains(serverLocal, "Elternabend (länger)") {
		t.Errorf("server copy of local-1 = %q, want the local edit", serverLocal)
	}
	if got := e.localFiles(t, "cal/calendar"); len(got) != 2 {
		t.Errorf("local calendar after second sync has %d files %v, want 2", len(got), got)
	}
	e.findLocal(t, "cal/calendar", "Zahnarzt verschoben")

	if got := ts.serverMembers(t, "anna", book); len(got) != 2 {
		t.Errorf("server address book after second sync has %d members %v, want 2", len(got), got)
	}
	r := ts.do(t, "anna", "GET", book+"juergen.vcf", "")
	if r.body != vCardPhoto {
		t.Errorf("vCard 3.0 after sync = %q, want the bytes that were PUT", r.body)
	}

	khal := e.run(t, "", "khal", "-c", filepath.Join(e.dir, "khal.conf"), "list", "2026-03-01", "10d")
	for _, want := range []string{"Zahnarzt verschoben", "Elternabend (länger)"} {
		if !strings.Contains(khal, want) {
			t.Errorf("khal list lacks %q:\n%s", want, khal)
		}
	}
	if strings.Contains(khal, "Wird gelöscht") {
		t.Errorf("khal list shows the deleted event:\n%s", khal)
	}

	khard := e.run(t, "", "khard", "-c", filepath.Join(e.dir, "khard.conf"), "list")
	for _, want := range []string{"Jürgen Müller", "Local Person"} {
		if !strings.Contains(khard, want) {
			t.Errorf("khard list lacks %q:\n%s", want, khard)
		}
	}
	if strings.Contains(khard, "Zoë") {
		t.Errorf("khard list shows the deleted contact:\n%s", khard)
	}
}
