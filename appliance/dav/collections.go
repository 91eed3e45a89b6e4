package dav

import (
	"encoding/xml"
	"errors"
	"net/http"
)

var (
	elemCollection  = xml.Name{Space: nsDAV, Local: "collection"}
	elemCalendar    = xml.Name{Space: nsCalDAV, Local: "calendar"}
	elemAddressbook = xml.Name{Space: nsCardDAV, Local: "addressbook"}
	elemComp        = xml.Name{Space: nsCalDAV, Local: "comp"}
	elemMkcalendar  = xml.Name{Space: nsCalDAV, Local: "mkcalendar"}
	elemMkcol       = xml.Name{Space: nsDAV, Local: "mkcol"}
)

// calendarComponents are the component types a calendar can take.
var calendarComponents = map[string]bool{"VEVENT": true, "VTODO": true, "VJOURNAL": true}

// mkcol creates a calendar with MKCALENDAR (want is kindCalendar, RFC 4791
// section 5.3.1) or a calendar or address book with extended MKCOL (want
// is 0, RFC 5689), with the properties of the body's DAV:set.
func (q *request) mkcol(want kind) error {
	if q.target.typ != targetCollection {
		return httpErrorf(http.StatusForbidden, "collections can be created directly inside /dav/calendars/%s/ or /dav/addressbooks/%s/ only", q.login, q.login)
	}
	if want != 0 && q.target.kind != want {
		return preconditionError(http.StatusForbidden, condCalendarLocationOK, "calendars can be created inside /dav/calendars/%s/ only", q.login)
	}

	var body mkcolBody
	present, err := readXMLBody(q.r, &body)
	if err != nil {
		return err
	}
	wantRoot := elemMkcol
	if want == kindCalendar {
		wantRoot = elemMkcalendar
	}
	if present && body.XMLName != wantRoot {
		return httpErrorf(http.StatusBadRequest, "request body is %s %s, want %s %s", body.XMLName.Space, body.XMLName.Local, wantRoot.Space, wantRoot.Local)
	}

	c := &collection{owner: q.login, kind: q.target.kind, name: q.target.collection, props: map[xml.Name]string{}}
	if c.kind == kindCalendar {
		c.components = []string{"VEVENT", "VTODO"}
	}
	if err := q.applyMkcolProps(c, body, want == 0); err != nil {
		return err
	}
	return q.createCollection(c)
}

// applyMkcolProps takes resourcetype and supported-calendar-component-set
// from the body and keeps the other properties as dead properties. An
// extended MKCOL must set a resourcetype that fits the home.
func (q *request) applyMkcolProps(c *collection, body mkcolBody, needType bool) error {
	typed := false
	for _, set := range body.Set {
		for _, e := range set.Prop.Elements {
			switch e.XMLName {
			case propResourceType:
				if err := checkResourceType(&e, c.kind); err != nil {
					return err
				}
				typed = true
			case propSupportedComps:
				comps, err := parseComponentSet(&e)
				if err != nil {
					return err
				}
				c.components = comps
			default:
				if protectedProps[e.XMLName] {
					return preconditionError(http.StatusForbidden, condCannotModifyProtected, "property %s %s is computed by the server", e.XMLName.Space, e.XMLName.Local)
				}
				c.props[e.XMLName] = e.Inner
			}
		}
	}
	if needType && !typed {
		return httpErrorf(http.StatusForbidden, "MKCOL needs a DAV:resourcetype with %s; plain collections are not supported here", map[kind]string{kindCalendar: "C:calendar", kindAddressBook: "CR:addressbook"}[c.kind])
	}
	return nil
}

func checkResourceType(e *anyElement, k kind) error {
	want := elemCalendar
	if k == kindAddressBook {
		want = elemAddressbook
	}
	if len(e.childrenNamed(elemCollection)) == 0 || len(e.childrenNamed(want)) == 0 {
		return preconditionError(http.StatusForbidden, xml.Name{Space: nsDAV, Local: "valid-resourcetype"}, "resourcetype must be collection and %s inside /dav/%s/", want.Local, k.homeSegment())
	}
	return nil
}

// parseComponentSet reads supported-calendar-component-set (RFC 4791
// section 5.2.3).
func parseComponentSet(e *anyElement) ([]string, error) {
	var comps []string
	for _, c := range e.childrenNamed(elemComp) {
		name := ""
		for _, a := range c.Attr {
			if a.Name.Local == "name" {
				name = a.Value
			}
		}
		if !calendarComponents[name] {
			return nil, httpErrorf(http.StatusForbidden, "component %q is not supported, use VEVENT, VTODO or VJOURNAL", name)
		}
		comps = append(comps, name)
	}
	if len(comps) == 0 {
		return nil, httpErrorf(http.StatusBadRequest, "supported-calendar-component-set names no component")
	}
	return comps, nil
}

func (q *request) createCollection(c *collection) error {
	if c.name == householdName || !validCollectionName(c.name) {
		return httpErrorf(http.StatusForbidden, "invalid collection name %q: use letters, digits and -_.@+~, not %q", c.name, householdName)
	}
	err := q.h.store.createCollection(q.ctx(), c)
	if errors.Is(err, errExists) {
		return preconditionError(http.StatusMethodNotAllowed, condResourceMustBeNull, "%s %q already exists", c.kind, c.name)
	}
	if err != nil {
		return err
	}
	q.h.log.Info("dav collection created", "user", q.login, "kind", c.kind.String(), "collection", c.name)
	q.w.Header().Set("Location", q.collectionHref(c))
	q.w.WriteHeader(http.StatusCreated)
	return nil
}

// proppatch sets and removes a collection's dead properties, such as
// displayname, calendar-description and Apple's calendar-color, all or
// none (RFC 4918 section 9.2).
func (q *request) proppatch() error {
	if q.target.typ != targetCollection {
		return httpErrorf(http.StatusForbidden, "PROPPATCH changes calendars and address books only")
	}
	c, err := q.targetCollection()
	if err != nil {
		return err
	}
	var body propertyUpdate
	present, err := readXMLBody(q.r, &body)
	if err != nil {
		return err
	}
	if !present {
		return httpErrorf(http.StatusBadRequest, "PROPPATCH needs a DAV:propertyupdate body")
	}

	set := map[xml.Name]string{}
	var remove []xml.Name
	statuses := map[int][]xml.Name{}
	for _, s := range body.Set {
		for _, e := range s.Prop.Elements {
			set[e.XMLName] = e.Inner
		}
	}
	for _, r := range body.Remove {
		remove = append(remove, r.Prop.names()...)
	}
	for n := range set {
		statuses[statusFor(n)] = append(statuses[statusFor(n)], n)
	}
	for _, n := range remove {
		statuses[statusFor(n)] = append(statuses[statusFor(n)], n)
	}

	if len(statuses[http.StatusForbidden]) > 0 {
		// RFC 4918 section 9.2: one failure fails the others with 424.
		statuses[http.StatusFailedDependency] = statuses[http.StatusOK]
		delete(statuses, http.StatusOK)
	} else if err := q.h.store.setProps(q.ctx(), c.id, set, remove); err != nil {
		return err
	}

	m := newMultistatus()
	m.propstatResponse(q.collectionHref(c), statuses)
	m.send(q.w)
	return nil
}

func statusFor(n xml.Name) int {
	if protectedProps[n] {
		return http.StatusForbidden
	}
	return http.StatusOK
}
