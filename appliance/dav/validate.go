package dav

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-ical"
	"github.com/emersion/go-vcard"
	"github.com/emersion/go-webdav/caldav"
)

// Preconditions of RFC 4791 section 5.3.2.1 and RFC 6352 section 6.3.2.1.
var (
	condValidCalendarData     = xml.Name{Space: nsCalDAV, Local: "valid-calendar-data"}
	condValidCalendarObject   = xml.Name{Space: nsCalDAV, Local: "valid-calendar-object-resource"}
	condSupportedComponent    = xml.Name{Space: nsCalDAV, Local: "supported-calendar-component"}
	condCalendarNoUIDConflict = xml.Name{Space: nsCalDAV, Local: "no-uid-conflict"}
	condValidAddressData      = xml.Name{Space: nsCardDAV, Local: "valid-address-data"}
	condAddressNoUIDConflict  = xml.Name{Space: nsCardDAV, Local: "no-uid-conflict"}
	condValidSyncToken        = xml.Name{Space: nsDAV, Local: "valid-sync-token"}
	condPropfindFiniteDepth   = xml.Name{Space: nsDAV, Local: "propfind-finite-depth"}
	condResourceMustBeNull    = xml.Name{Space: nsDAV, Local: "resource-must-be-null"}
	condCalendarLocationOK    = xml.Name{Space: nsCalDAV, Local: "calendar-collection-location-ok"}
	condAddressbookLocationOK = xml.Name{Space: nsCardDAV, Local: "addressbook-collection-location-ok"}
	condCannotModifyProtected = xml.Name{Space: nsDAV, Local: "cannot-modify-protected-property"}
)

// parsedCalendar is a calendar object resource that passed the checks.
type parsedCalendar struct {
	cal       *ical.Calendar
	uid       string
	component string
}

// parseCalendarObject checks data against RFC 5545 syntax and the
// calendar object rules of RFC 4791 section 4.1: one VCALENDAR with
// VERSION, no METHOD, one component type and one UID.
func parseCalendarObject(data []byte) (*parsedCalendar, error) {
	if err := checkText(data); err != nil {
		return nil, preconditionError(http.StatusBadRequest, condValidCalendarData, "invalid iCalendar data: %v", err)
	}
	cal, err := decodeOneCalendar(data)
	if err != nil {
		return nil, preconditionError(http.StatusBadRequest, condValidCalendarData, "invalid iCalendar data: %v", err)
	}
	if v := cal.Props.Get(ical.PropVersion); v == nil || v.Value != "2.0" {
		return nil, preconditionError(http.StatusBadRequest, condValidCalendarData, "invalid iCalendar data: VERSION:2.0 is missing")
	}

	comp, uid, err := caldav.ValidateCalendarObject(cal)
	if err != nil {
		return nil, preconditionError(http.StatusForbidden, condValidCalendarObject, "invalid calendar object: %v", err)
	}
	if comp == "" || uid == "" {
		return nil, preconditionError(http.StatusForbidden, condValidCalendarObject, "invalid calendar object: it needs a VEVENT, VTODO or VJOURNAL with a UID")
	}
	return &parsedCalendar{cal: cal, uid: uid, component: comp}, nil
}

// decodeOneCalendar decodes data, which must contain exactly one VCALENDAR.
// go-ical's decoder (version 20250329121855) panics on some malformed
// parameters, such as a line that ends inside a parameter value, so a
// panic becomes an error.
func decodeOneCalendar(data []byte) (cal *ical.Calendar, err error) {
	defer func() {
		if r := recover(); r != nil {
			cal, err = nil, fmt.Errorf("malformed content line (%v)", r)
		}
	}()
	dec := ical.NewDecoder(bytes.NewReader(data))
	if cal, err = dec.Decode(); err != nil {
		return nil, err
	}
	if _, err := dec.Decode(); err != io.EOF {
		return nil, errors.New("more than one VCALENDAR")
	}
	return cal, nil
}

// decodeOneVCard decodes data, which must contain exactly one vCard, and
// turns a panic of the decoder into an error as decodeOneCalendar does.
func decodeOneVCard(data []byte) (card vcard.Card, err error) {
	defer func() {
		if r := recover(); r != nil {
			card, err = nil, fmt.Errorf("malformed content line (%v)", r)
		}
	}()
	dec := vcard.NewDecoder(bytes.NewReader(data))
	if card, err = dec.Decode(); err != nil {
		return nil, err
	}
	if _, err := dec.Decode(); err != io.EOF {
		return nil, errors.New("more than one vCard in the body")
	}
	return card, nil
}

// checkDates parses every date of the object once, so that a bad DTSTART
// or RRULE is rejected at PUT instead of failing later queries.
func (p *parsedCalendar) checkDates() (start, end *int64, err error) {
	start, end, err = objectRange(p.cal)
	if err != nil {
		return nil, nil, preconditionError(http.StatusBadRequest, condValidCalendarData, "invalid iCalendar data: %v", err)
	}
	return start, end, nil
}

// parseVCard checks data as one vCard 3.0 (RFC 2426) or 4.0 (RFC 6350)
// with FN, and returns its UID (empty when it has none).
func parseVCard(data []byte) (vcard.Card, string, error) {
	if err := checkText(data); err != nil {
		return nil, "", preconditionError(http.StatusBadRequest, condValidAddressData, "invalid vCard: %v", err)
	}
	card, err := decodeOneVCard(data)
	if err != nil {
		return nil, "", preconditionError(http.StatusBadRequest, condValidAddressData, "invalid vCard: %v", err)
	}
	version := card.Value(vcard.FieldVersion)
	if version != "3.0" && version != "4.0" {
		return nil, "", preconditionError(http.StatusBadRequest, condValidAddressData, "invalid vCard: VERSION is %q, want 3.0 or 4.0", version)
	}
	if card.Get(vcard.FieldFormattedName) == nil {
		return nil, "", preconditionError(http.StatusBadRequest, condValidAddressData, "invalid vCard: FN is missing")
	}
	return card, card.Value(vcard.FieldUID), nil
}

// checkText rejects data that is not UTF-8 or contains NUL, which both
// iCalendar and vCard 4.0 forbid, and data without line breaks between
// BEGIN and END.
func checkText(data []byte) error {
	if !utf8.Valid(data) {
		return errors.New("not UTF-8")
	}
	if bytes.IndexByte(data, 0) >= 0 {
		return errors.New("contains a NUL byte")
	}
	if !strings.Contains(string(data), "\n") {
		return errors.New("no line breaks")
	}
	return nil
}
