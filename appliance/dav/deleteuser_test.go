package dav

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
)

// TestDeleteUserNewUserStartsEmpty guards against a new user with the
// login name of a deleted one inheriting their objects, locks or sync
// state, while the household's collections and other users keep theirs.
func TestDeleteUserNewUserStartsEmpty(t *testing.T) {
	ts := newTestServer(t, "anna", "ben")
	event := func(uid, summary string) string {
		return fmt.Sprintf(testEvent, uid, "20260301T100000Z", "20260301T110000Z", summary)
	}
	card := "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:c1\r\nFN:Oma Erna\r\nEND:VCARD\r\n"
	wantStatus(t, "PUT ben's event", ts.do(t, "ben", "PUT", "/dav/calendars/ben/calendar/e1.ics", event("e1", "Zahnarzt")), http.StatusCreated)
	wantStatus(t, "PUT ben's card", ts.do(t, "ben", "PUT", "/dav/addressbooks/ben/contacts/c1.vcf", card), http.StatusCreated)
	wantStatus(t, "PUT ben's household event", ts.do(t, "ben", "PUT", "/dav/calendars/ben/household/h1.ics", event("h1", "Grillabend")), http.StatusCreated)
	wantStatus(t, "PUT anna's event", ts.do(t, "anna", "PUT", "/dav/calendars/anna/calendar/a1.ics", event("a1", "Chor")), http.StatusCreated)
	wantStatus(t, "MKCALENDAR ben's extra calendar", ts.do(t, "ben", "MKCALENDAR", "/dav/calendars/ben/verein/", ""), http.StatusCreated)
	lock := ts.do(t, "ben", "LOCK", "/dav/calendars/ben/calendar/e2.ics", lockInfoBody, "Timeout", "Second-3600")
	if lock.status != http.StatusOK && lock.status != http.StatusCreated {
		t.Fatalf("LOCK: got status %d, want 200 or 201; body: %s", lock.status, lock.body)
	}
	r := ts.do(t, "ben", "REPORT", "/dav/calendars/ben/calendar/", syncReport("", 0), "Depth", "0")
	wantStatus(t, "sync before DeleteUser", r, http.StatusMultiStatus)
	oldToken := syncTokenPattern.FindStringSubmatch(r.body)
	if oldToken == nil {
		t.Fatalf("sync report lacks a sync token: %s", r.body)
	}

	if err := ts.handler.DeleteUser(context.Background(), "ben"); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}

	var orphans int
	err := ts.db.QueryRow(`SELECT
		(SELECT count(*) FROM dav_collections WHERE owner = 'ben') +
		(SELECT count(*) FROM dav_homes WHERE login = 'ben') +
		(SELECT count(*) FROM dav_objects WHERE collection_id NOT IN (SELECT id FROM dav_collections)) +
		(SELECT count(*) FROM dav_changes WHERE collection_id NOT IN (SELECT id FROM dav_collections)) +
		(SELECT count(*) FROM dav_collection_props WHERE collection_id NOT IN (SELECT id FROM dav_collections))`).Scan(&orphans)
	if err != nil {
		t.Fatal(err)
	}
	if orphans != 0 {
		t.Errorf("rows of ben left after DeleteUser: got %d, want 0", orphans)
	}

	// The next request of a user named ben makes fresh default collections.
	wantStatus(t, "GET ben's event after DeleteUser", ts.do(t, "ben", "GET", "/dav/calendars/ben/calendar/e1.ics", ""), http.StatusNotFound)
	wantStatus(t, "GET ben's card after DeleteUser", ts.do(t, "ben", "GET", "/dav/addressbooks/ben/contacts/c1.vcf", ""), http.StatusNotFound)
	wantStatus(t, "PROPFIND ben's extra calendar after DeleteUser", ts.do(t, "ben", "PROPFIND", "/dav/calendars/ben/verein/", "", "Depth", "0"), http.StatusNotFound)
	wantStatus(t, "GET household event after DeleteUser", ts.do(t, "anna", "GET", "/dav/calendars/anna/household/h1.ics", ""), http.StatusOK)
	wantStatus(t, "GET anna's event after DeleteUser", ts.do(t, "anna", "GET", "/dav/calendars/anna/calendar/a1.ics", ""), http.StatusOK)
	wantStatus(t, "PUT where the deleted ben held a lock", ts.do(t, "ben", "PUT", "/dav/calendars/ben/calendar/e2.ics", event("e2", "Neu")), http.StatusCreated)

	r = ts.do(t, "ben", "REPORT", "/dav/calendars/ben/calendar/", syncReport(oldToken[1], 0), "Depth", "0")
	wantStatus(t, "sync with the deleted calendar's token", r, http.StatusForbidden)
	if !strings.Contains(r.body, "valid-sync-token") {
		t.Errorf("sync with the deleted calendar's token: body %s, want the valid-sync-token precondition", r.body)
	}
	r = ts.do(t, "ben", "REPORT", "/dav/calendars/ben/calendar/", syncReport("", 0), "Depth", "0")
	wantStatus(t, "initial sync of the new calendar", r, http.StatusMultiStatus)
	if n := strings.Count(r.body, "<D:getetag>"); n != 1 {
		t.Errorf("new calendar lists %d objects, want 1 (e2): %s", n, r.body)
	}
}

const lockInfoBody = `<?xml version="1.0" encoding="utf-8"?>
<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>ben</D:owner></D:lockinfo>`

// TestPutIntoCollectionDeletedMeanwhile guards against a 500 for a PUT
// whose collection DeleteUser removes while the PUT runs. A trigger deletes
// the collection just before the PUT inserts its rows, so the insert fails
// on the foreign key as it does in that race.
func TestPutIntoCollectionDeletedMeanwhile(t *testing.T) {
	ts := newTestServer(t, "ben")
	event := fmt.Sprintf(testEvent, "e1", "20260301T100000Z", "20260301T110000Z", "Zahnarzt")
	wantStatus(t, "PUT first event", ts.do(t, "ben", "PUT", "/dav/calendars/ben/calendar/e1.ics", event), http.StatusCreated)

	for _, table := range []string{"dav_objects", "dav_changes"} {
		_, err := ts.db.Exec(`CREATE TRIGGER delete_collection_before_` + table + ` BEFORE INSERT ON ` + table + `
			BEGIN DELETE FROM dav_collections WHERE id = NEW.collection_id; END`)
		if err != nil {
			t.Fatal(err)
		}
	}
	event = fmt.Sprintf(testEvent, "e2", "20260302T100000Z", "20260302T110000Z", "Chor")
	r := ts.do(t, "ben", "PUT", "/dav/calendars/ben/calendar/e2.ics", event)
	wantStatus(t, "PUT while the collection is deleted", r, http.StatusNotFound)
	if !strings.Contains(r.body, "deleted while this request ran") {
		t.Errorf("PUT while the collection is deleted: body %q, want the reason", r.body)
	}
}
