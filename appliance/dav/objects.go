package dav

import (
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"strconv"
)

// contentType returns the media type of a collection's members.
func contentType(k kind) string {
	if k == kindAddressBook {
		return "text/vcard; charset=utf-8"
	}
	return "text/calendar; charset=utf-8"
}

// targetCollection loads the collection of the request's target, or
// returns 404.
func (q *request) targetCollection() (*collection, error) {
	c, err := q.h.store.collection(q.ctx(), q.login, q.target.kind, q.target.collection)
	if errors.Is(err, errNotFound) {
		return nil, httpErrorf(http.StatusNotFound, "no %s named %q", q.target.kind, q.target.collection)
	}
	return c, err
}

// get serves GET and HEAD of an object with the bytes that PUT stored.
func (q *request) get() error {
	if q.target.typ != targetObject {
		q.w.Header().Set("Allow", "OPTIONS, PROPFIND, REPORT")
		return httpErrorf(http.StatusMethodNotAllowed, "GET is served for calendar objects and vCards only; use PROPFIND or REPORT on collections")
	}
	c, err := q.targetCollection()
	if err != nil {
		return err
	}
	o, err := q.h.store.object(q.ctx(), c.id, q.target.object)
	if errors.Is(err, errNotFound) {
		return httpErrorf(http.StatusNotFound, "no object named %q", q.target.object)
	}
	if err != nil {
		return err
	}

	h := q.w.Header()
	h.Set("ETag", `"`+o.etag+`"`)
	h.Set("Last-Modified", o.modified.UTC().Format(http.TimeFormat))
	if inm := q.r.Header.Get("If-None-Match"); inm != "" && matchesETag(inm, o.etag, true) {
		q.w.WriteHeader(http.StatusNotModified)
		return nil
	}
	h.Set("Content-Type", contentType(q.target.kind))
	h.Set("Content-Length", strconv.Itoa(len(o.data)))
	q.w.WriteHeader(http.StatusOK)
	if q.r.Method != http.MethodHead {
		q.w.Write(o.data)
	}
	return nil
}

// put stores a calendar object or vCard byte for byte after checking it
// (RFC 4791 section 5.3.2, RFC 6352 section 6.3.2).
func (q *request) put() error {
	if q.target.typ != targetObject {
		return httpErrorf(http.StatusMethodNotAllowed, "PUT creates calendar objects and vCards inside a collection only")
	}
	c, err := q.targetCollection()
	if errors.Is(err, errNotFound) {
		return httpErrorf(http.StatusConflict, "no %s named %q: create it first", q.target.kind, q.target.collection)
	}
	if err != nil {
		return err
	}
	if err := q.checkMediaType(); err != nil {
		return err
	}
	data, err := q.readObjectBody()
	if err != nil {
		return err
	}

	obj := newObject{name: q.target.object, data: data}
	if q.target.kind == kindCalendar {
		err = q.checkCalendarObject(c, &obj)
	} else {
		_, obj.uid, err = parseVCard(data)
	}
	if err != nil {
		return err
	}

	created, etag, conflict, err := q.h.store.putObject(q.ctx(), c.id, obj, preconditionsOf(q.r))
	switch {
	case errors.Is(err, errPrecondition):
		return httpErrorf(http.StatusPreconditionFailed, "the object changed: If-Match or If-None-Match does not hold, fetch it again")
	case errors.Is(err, errUIDConflict):
		cond := condCalendarNoUIDConflict
		if q.target.kind == kindAddressBook {
			cond = condAddressNoUIDConflict
		}
		return preconditionError(http.StatusConflict, cond, "UID %q is already used by %q in this collection", obj.uid, conflict)
	case err != nil:
		return err
	}

	q.h.log.Debug("dav object stored", "user", q.login, "collection", c.urlName(), "object", obj.name, "bytes", len(data))
	q.w.Header().Set("ETag", `"`+etag+`"`)
	if created {
		q.w.WriteHeader(http.StatusCreated)
	} else {
		q.w.WriteHeader(http.StatusNoContent)
	}
	return nil
}

// checkMediaType accepts a missing Content-Type and the media types of
// the target's kind, including the text/x-vcard of older clients.
func (q *request) checkMediaType() error {
	ct := q.r.Header.Get("Content-Type")
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return httpErrorf(http.StatusUnsupportedMediaType, "invalid Content-Type %q", ct)
	}
	if q.target.kind == kindCalendar && mt == "text/calendar" {
		return nil
	}
	if q.target.kind == kindAddressBook && (mt == "text/vcard" || mt == "text/x-vcard") {
		return nil
	}
	return httpErrorf(http.StatusUnsupportedMediaType, "Content-Type %q does not fit this %s collection; send %s", mt, q.target.kind, contentType(q.target.kind))
}

// readObjectBody reads the body up to the configured maximum, or returns
// 413 with the limit in plain text. The text is more use to a user than
// the bare max-resource-size precondition of RFC 4791 section 5.3.2.1.
func (q *request) readObjectBody() ([]byte, error) {
	tooLarge := func(size string) error {
		return httpErrorf(http.StatusRequestEntityTooLarge, "%s%s is larger than the limit of %d bytes", q.target.kind.memberName(), size, q.h.maxSize)
	}
	if q.r.ContentLength > q.h.maxSize {
		return nil, tooLarge(fmt.Sprintf(" of %d bytes", q.r.ContentLength))
	}
	data, err := io.ReadAll(io.LimitReader(q.r.Body, q.h.maxSize+1))
	if err != nil {
		return nil, httpErrorf(http.StatusBadRequest, "reading request body failed")
	}
	if int64(len(data)) > q.h.maxSize {
		return nil, tooLarge("")
	}
	return data, nil
}

// checkCalendarObject parses the object, checks that c takes its
// component type, and fills in UID and time range.
func (q *request) checkCalendarObject(c *collection, obj *newObject) error {
	p, err := parseCalendarObject(obj.data)
	if err != nil {
		return err
	}
	if !c.supports(p.component) {
		return preconditionError(http.StatusForbidden, condSupportedComponent, "calendar %q takes %v, not %s", c.urlName(), c.components, p.component)
	}
	obj.uid = p.uid
	obj.rangeStart, obj.rangeEnd, err = p.checkDates()
	return err
}

// delete removes an object or a collection.
func (q *request) delete() error {
	switch q.target.typ {
	case targetObject:
		return q.deleteObject()
	case targetCollection:
		return q.deleteCollection()
	}
	return httpErrorf(http.StatusForbidden, "only collections and their members can be deleted")
}

func (q *request) deleteObject() error {
	c, err := q.targetCollection()
	if err != nil {
		return err
	}
	err = q.h.store.deleteObject(q.ctx(), c.id, q.target.object, preconditionsOf(q.r))
	switch {
	case errors.Is(err, errNotFound):
		return httpErrorf(http.StatusNotFound, "no object named %q", q.target.object)
	case errors.Is(err, errPrecondition):
		return httpErrorf(http.StatusPreconditionFailed, "the object changed: If-Match does not hold, fetch it again")
	case err != nil:
		return err
	}
	q.w.WriteHeader(http.StatusNoContent)
	return nil
}

func (q *request) deleteCollection() error {
	c, err := q.targetCollection()
	if err != nil {
		return err
	}
	if c.owner == householdOwner {
		return httpErrorf(http.StatusForbidden, "the household's %s belongs to every member and cannot be deleted", q.target.kind)
	}
	if err := q.h.store.deleteCollection(q.ctx(), c.id); err != nil {
		return err
	}
	q.h.log.Info("dav collection deleted", "user", q.login, "kind", c.kind.String(), "collection", c.name)
	q.w.WriteHeader(http.StatusNoContent)
	return nil
}
