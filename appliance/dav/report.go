package dav

import (
	"encoding/xml"
	"errors"
	"net/http"
	"strconv"
	"strings"
)

var (
	reportCalendarQuery       = xml.Name{Space: nsCalDAV, Local: "calendar-query"}
	reportCalendarMultiget    = xml.Name{Space: nsCalDAV, Local: "calendar-multiget"}
	reportAddressbookQuery    = xml.Name{Space: nsCardDAV, Local: "addressbook-query"}
	reportAddressbookMultiget = xml.Name{Space: nsCardDAV, Local: "addressbook-multiget"}
	reportSyncCollection      = xml.Name{Space: nsDAV, Local: "sync-collection"}
)

// report serves the REPORT method (RFC 3253 section 3.6) for the reports
// that supported-report-set lists.
func (q *request) report() error {
	var body reportBody
	present, err := readXMLBody(q.r, &body)
	if err != nil {
		return err
	}
	if !present {
		return httpErrorf(http.StatusBadRequest, "REPORT needs a request body")
	}
	req := propRequest{all: body.AllProp != nil || body.Prop == nil}
	if body.Prop != nil {
		req.names = body.Prop.names()
	}

	kindOf := map[xml.Name]kind{
		reportCalendarQuery: kindCalendar, reportCalendarMultiget: kindCalendar,
		reportAddressbookQuery: kindAddressBook, reportAddressbookMultiget: kindAddressBook,
	}
	if k, ok := kindOf[body.XMLName]; ok && q.target.typ >= targetHome && q.target.kind != k {
		return preconditionError(http.StatusForbidden, xml.Name{Space: nsDAV, Local: "supported-report"}, "report %s does not apply to a %s", body.XMLName.Local, q.target.kind)
	}

	switch body.XMLName {
	case reportCalendarQuery:
		return q.calendarQuery(&body, req)
	case reportAddressbookQuery:
		return q.addressbookQuery(&body, req)
	case reportCalendarMultiget, reportAddressbookMultiget:
		return q.multiget(&body, req)
	case reportSyncCollection:
		return q.syncCollection(&body, req)
	}
	return preconditionError(http.StatusForbidden, xml.Name{Space: nsDAV, Local: "supported-report"}, "report %s %s is not supported", body.XMLName.Space, body.XMLName.Local)
}

// queryTargets returns the collection of the request and the objects a
// query looks at: all members, or the one object the request names.
func (q *request) queryTargets(window *timeWindow) (*collection, []*object, error) {
	if q.target.typ != targetCollection && q.target.typ != targetObject {
		return nil, nil, httpErrorf(http.StatusForbidden, "queries run on a calendar or address book, not on %s", q.r.URL.Path)
	}
	c, err := q.targetCollection()
	if err != nil {
		return nil, nil, err
	}
	if q.target.typ == targetObject {
		o, err := q.h.store.object(q.ctx(), c.id, q.target.object)
		if errors.Is(err, errNotFound) {
			return nil, nil, httpErrorf(http.StatusNotFound, "no object named %q", q.target.object)
		}
		return c, []*object{o}, err
	}
	objs, err := q.h.store.objects(q.ctx(), c.id, true, window)
	return c, objs, err
}

// calendarQuery serves calendar-query (RFC 4791 section 7.8).
func (q *request) calendarQuery(body *reportBody, req propRequest) error {
	if body.CalFilter == nil {
		return httpErrorf(http.StatusBadRequest, "calendar-query needs a CALDAV:filter")
	}
	f, err := newCalendarFilter(&body.CalFilter.CompFilter)
	if err != nil {
		return err
	}
	dataReq, err := parseCalendarDataRequest(body.Prop)
	if err != nil {
		return err
	}
	c, objs, err := q.queryTargets(f.window())
	if err != nil {
		return err
	}

	m := newMultistatus()
	for _, o := range objs {
		ok, err := f.matches(o.data)
		if err != nil {
			q.h.log.Warn("dav stored object does not parse", "user", q.login, "collection", c.urlName(), "object", o.name, "err", err)
			continue
		}
		if ok {
			m.add(q.calendarObjectProps(c, o, dataReq), req)
		}
	}
	m.send(q.w)
	return nil
}

// calendarObjectProps returns the properties of o with calendar-data
// shaped as dataReq requests. An object that cannot be shaped keeps its
// stored data, and a warning is logged.
func (q *request) calendarObjectProps(c *collection, o *object, dataReq calendarDataRequest) resourceProps {
	r := q.objectProps(c, o)
	if o.data == nil || dataReq == (calendarDataRequest{}) {
		return r
	}
	data, err := dataReq.apply(o.data)
	if err != nil {
		q.h.log.Warn("dav calendar-data sent as stored", "user", q.login, "collection", c.urlName(), "object", o.name, "err", err)
		return r
	}
	r.values[propCalendarData] = escape(string(data))
	return r
}

// addressbookQuery serves addressbook-query (RFC 6352 section 8.6).
func (q *request) addressbookQuery(body *reportBody, req propRequest) error {
	query, err := newAddressbookQuery(body)
	if err != nil {
		return err
	}
	c, objs, err := q.queryTargets(nil)
	if err != nil {
		return err
	}

	m := newMultistatus()
	n := 0
	for _, o := range objs {
		ok, err := query.matches(o.data)
		if err != nil {
			q.h.log.Warn("dav stored vCard does not parse", "user", q.login, "collection", c.urlName(), "object", o.name, "err", err)
			continue
		}
		if !ok {
			continue
		}
		if query.limit > 0 && n == query.limit {
			// RFC 6352 section 8.6.1: a truncated result ends with 507
			// for the request URI.
			m.statusResponse(q.collectionHref(c), http.StatusInsufficientStorage)
			break
		}
		m.add(q.objectProps(c, o), req)
		n++
	}
	m.send(q.w)
	return nil
}

// multiget serves calendar-multiget (RFC 4791 section 7.9) and
// addressbook-multiget (RFC 6352 section 8.7). An href that names no
// object of the user gets 404.
func (q *request) multiget(body *reportBody, req propRequest) error {
	if q.target.typ != targetCollection && q.target.typ != targetObject {
		return httpErrorf(http.StatusForbidden, "multiget runs on a calendar or address book")
	}
	var dataReq calendarDataRequest
	if q.target.kind == kindCalendar {
		var err error
		if dataReq, err = parseCalendarDataRequest(body.Prop); err != nil {
			return err
		}
	}
	collections := map[string]*collection{}
	m := newMultistatus()
	for _, h := range body.Hrefs {
		c, o, err := q.lookupHref(h, collections)
		if err != nil {
			var he *httpError
			if !errors.As(err, &he) {
				return err
			}
			m.statusResponse(h, he.code)
			continue
		}
		if c.kind == kindCalendar {
			m.add(q.calendarObjectProps(c, o, dataReq), req)
		} else {
			m.add(q.objectProps(c, o), req)
		}
	}
	m.send(q.w)
	return nil
}

// lookupHref loads the object that h names, caching collections by URL
// name.
func (q *request) lookupHref(h string, collections map[string]*collection) (*collection, *object, error) {
	t, err := parseHref(h, q.login)
	if err != nil {
		return nil, nil, err
	}
	if t.typ != targetObject || t.kind != q.target.kind {
		return nil, nil, httpErrorf(http.StatusNotFound, "href names no %s", q.target.kind.memberName())
	}
	c, ok := collections[t.collection]
	if !ok {
		c, err = q.h.store.collection(q.ctx(), q.login, t.kind, t.collection)
		if errors.Is(err, errNotFound) {
			return nil, nil, httpErrorf(http.StatusNotFound, "no such collection")
		}
		if err != nil {
			return nil, nil, err
		}
		collections[t.collection] = c
	}
	o, err := q.h.store.object(q.ctx(), c.id, t.object)
	if errors.Is(err, errNotFound) {
		return nil, nil, httpErrorf(http.StatusNotFound, "no such object")
	}
	if err != nil {
		return nil, nil, err
	}
	return c, o, nil
}

// syncCollection serves sync-collection (RFC 6578 section 3.2). Every
// member of a collection has an entry in the change log, so an initial
// sync is the log since 0 without its tombstones.
func (q *request) syncCollection(body *reportBody, req propRequest) error {
	if q.target.typ != targetCollection {
		return httpErrorf(http.StatusForbidden, "sync-collection runs on a calendar or address book")
	}
	if body.SyncLevel != "" && body.SyncLevel != "1" && body.SyncLevel != "infinite" {
		return httpErrorf(http.StatusBadRequest, "invalid sync-level %q, want 1", body.SyncLevel)
	}
	c, err := q.targetCollection()
	if err != nil {
		return err
	}
	since, err := parseSyncToken(c, body.SyncToken)
	if err != nil {
		return err
	}

	changes, err := q.h.store.changesSince(q.ctx(), c.id, since)
	if err != nil {
		return err
	}
	objs, err := q.h.store.objects(q.ctx(), c.id, wantsData(req), nil)
	if err != nil {
		return err
	}
	byName := make(map[string]*object, len(objs))
	for _, o := range objs {
		byName[o.name] = o
	}

	limit := 0
	if body.SyncLimit != nil {
		limit = body.SyncLimit.NResults
	}
	m := newMultistatus()
	token, n := since, 0
	for _, ch := range changes {
		if limit > 0 && n == limit {
			// RFC 6578 section 3.6: a truncated result reports 507 for
			// the collection, and the token resumes after the last change.
			m.statusResponse(q.collectionHref(c), http.StatusInsufficientStorage)
			break
		}
		token = max(token, ch.seq)
		o, ok := byName[ch.name]
		switch {
		case ok:
			m.add(q.objectProps(c, o), req)
		case since > 0:
			m.statusResponse(q.objectHref(c, ch.name), http.StatusNotFound)
		default:
			continue // a tombstone is no news to a client without a token
		}
		n++
	}
	if limit == 0 || n < limit {
		token = max(token, c.seq)
	}
	c.seq = token
	m.syncToken(c.syncToken())
	m.send(q.w)
	return nil
}

// parseSyncToken returns the seq of a token from c, 0 for an initial
// sync, or 403 with valid-sync-token for a token of another collection or
// from the future (RFC 6578 section 3.2).
func parseSyncToken(c *collection, token *string) (int64, error) {
	if token == nil || strings.TrimSpace(*token) == "" {
		return 0, nil
	}
	t := strings.TrimSpace(*token)
	rest, ok := strings.CutPrefix(t, syncTokenPrefix+c.syncID+"-")
	seq, err := strconv.ParseInt(rest, 10, 64)
	if !ok || err != nil || seq < 0 || seq > c.seq {
		return 0, preconditionError(http.StatusForbidden, condValidSyncToken, "sync token %q is not valid for this collection, sync again without a token", t)
	}
	return seq, nil
}
