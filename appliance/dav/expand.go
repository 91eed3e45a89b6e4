package dav

import (
	"encoding/xml"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-ical"
)

var (
	elemExpand             = xml.Name{Space: nsCalDAV, Local: "expand"}
	elemLimitRecurrenceSet = xml.Name{Space: nsCalDAV, Local: "limit-recurrence-set"}
)

// calendarDataRequest contains the children of calendar-data in a
// calendaring REPORT (RFC 4791 section 9.6) that change the returned data.
// A nil window leaves the stored object as it is.
type calendarDataRequest struct {
	expand          *timeWindow // CALDAV:expand, section 9.6.5
	limitRecurrence *timeWindow // CALDAV:limit-recurrence-set, section 9.6.6
}

// parseCalendarDataRequest reads expand and limit-recurrence-set from the
// calendar-data element of prop, if there is one.
// NOTE: comp and prop (partial retrieval, section 9.6.1) and
// limit-freebusy-set are ignored, so the whole object is returned.
func parseCalendarDataRequest(prop *propList) (calendarDataRequest, error) {
	var req calendarDataRequest
	if prop == nil {
		return req, nil
	}
	for i := range prop.Elements {
		e := &prop.Elements[i]
		if e.XMLName != propCalendarData {
			continue
		}
		for _, child := range e.Children {
			var err error
			switch child.Name {
			case elemExpand:
				req.expand, err = parseRecurrenceWindow(child)
			case elemLimitRecurrenceSet:
				req.limitRecurrence, err = parseRecurrenceWindow(child)
			}
			if err != nil {
				return req, err
			}
		}
	}
	if req.expand != nil && req.limitRecurrence != nil {
		return req, httpErrorf(http.StatusBadRequest, "calendar-data may contain expand or limit-recurrence-set, not both")
	}
	return req, nil
}

// parseRecurrenceWindow reads the start and end attributes of expand or
// limit-recurrence-set. Both are required UTC date-times and end must be
// after start (RFC 4791 section 9.6.5 and 9.6.6). RFC 4791 names no
// precondition for a bad range, so the error is a plain 400.
func parseRecurrenceWindow(e xml.StartElement) (*timeWindow, error) {
	var start, end string
	for _, a := range e.Attr {
		switch a.Name {
		case xml.Name{Local: "start"}:
			start = a.Value
		case xml.Name{Local: "end"}:
			end = a.Value
		}
	}
	if start == "" || end == "" {
		return nil, httpErrorf(http.StatusBadRequest, "CALDAV:%s needs both start and end attributes in UTC, like start=\"20260101T000000Z\"", e.Name.Local)
	}
	w := &timeWindow{}
	var err error
	if w.start, err = parseUTCBound(e.Name.Local, start); err != nil {
		return nil, err
	}
	if w.end, err = parseUTCBound(e.Name.Local, end); err != nil {
		return nil, err
	}
	if !w.end.After(w.start) {
		return nil, httpErrorf(http.StatusBadRequest, "CALDAV:%s end %s must be after start %s", e.Name.Local, end, start)
	}
	return w, nil
}

// apply returns data shaped as req requests. It returns data itself when
// req requests nothing or changes nothing, so a plain request gets the
// stored bytes.
func (req calendarDataRequest) apply(data []byte) ([]byte, error) {
	if req.expand == nil && req.limitRecurrence == nil {
		return data, nil
	}
	cal, err := decodeOneCalendar(data)
	if err != nil {
		return nil, err
	}
	if req.expand != nil {
		expanded, err := expandCalendar(cal, *req.expand)
		if err != nil {
			return nil, err
		}
		return encodeCalendar(expanded), nil
	}
	changed, err := limitRecurrenceSet(cal, *req.limitRecurrence)
	if err != nil || !changed {
		return data, err
	}
	return encodeCalendar(cal), nil
}

// recurrenceProps are the properties that an expanded component must not
// carry (RFC 4791 section 9.6.5).
var recurrenceProps = []string{ical.PropRecurrenceRule, ical.PropRecurrenceDates, ical.PropExceptionDates, "EXRULE"}

// expandCalendar returns a copy of cal with one component per occurrence
// that overlaps w, and without VTIMEZONE (RFC 4791 section 9.6.5). An
// override replaces the occurrence its RECURRENCE-ID names. Date-times
// with a TZID and floating ones are converted to UTC, and floating times
// are read as UTC as in time-range queries. All-day dates stay dates.
// NOTE: the request's CALDAV:timezone is ignored, and a component with
// more than maxInstances occurrences before the end of w loses the later
// ones without an error.
func expandCalendar(cal *ical.Calendar, w timeWindow) (*ical.Calendar, error) {
	tz := newTimeZones(cal)
	out := ical.NewCalendar()
	out.Props = cloneProps(cal.Props)
	for _, c := range cal.Children {
		if c.Name != ical.CompTimezone && !calendarComponents[c.Name] {
			out.Children = append(out.Children, cloneComponent(c))
		}
	}

	for _, name := range []string{ical.CompEvent, ical.CompToDo, ical.CompJournal} {
		g, err := newComponentGroup(cal, tz, name)
		if err != nil {
			return nil, err
		}
		if g.master == nil && len(g.overrides) == 0 {
			continue
		}
		var found []instance
		err = g.eachInWindow(w, func(in instance) bool {
			found = append(found, in)
			return true
		})
		if err != nil {
			return nil, err
		}
		slices.SortStableFunc(found, func(a, b instance) int { return a.start.Compare(b.start) })
		for _, in := range found {
			c, err := g.instanceComponent(in)
			if err != nil {
				return nil, err
			}
			out.Children = append(out.Children, c)
		}
	}
	return out, nil
}

// recurs reports whether the group is a recurrence set: a master with
// RRULE or RDATE, or any override.
func (g *componentGroup) recurs() bool {
	if len(g.overrides) > 0 {
		return true
	}
	return g.master != nil && (g.master.Props.Get(ical.PropRecurrenceRule) != nil || g.master.Props.Get(ical.PropRecurrenceDates) != nil)
}

// instanceComponent returns the component for one occurrence: the override
// or a copy of the master with the occurrence's times and a RECURRENCE-ID,
// which RFC 4791 section 9.6.5 requires for every occurrence but the first
// and which the first gets too.
func (g *componentGroup) instanceComponent(in instance) (*ical.Component, error) {
	c := cloneComponent(in.component)
	for _, name := range recurrenceProps {
		c.Props.Del(name)
	}
	if !in.override && in.dated && g.recurs() {
		if err := g.setOccurrenceTimes(c, in.span); err != nil {
			return nil, err
		}
	}
	if err := g.tz.convertToUTC(c); err != nil {
		return nil, err
	}
	return c, nil
}

// setOccurrenceTimes sets DTSTART, DTEND or DUE and RECURRENCE-ID of c,
// a copy of the master, to the occurrence s. DURATION stays as it is.
func (g *componentGroup) setOccurrenceTimes(c *ical.Component, s span) error {
	startName, endName := ical.PropDateTimeStart, ical.PropDateTimeEnd
	if c.Name == ical.CompToDo {
		endName = ical.PropDue
	}
	if c.Props.Get(startName) == nil {
		// A VTODO with DUE and no DTSTART recurs on its DUE.
		startName, endName = ical.PropDue, ""
	}

	start := c.Props.Get(startName)
	_, isDate, err := g.tz.parseTime(start)
	if err != nil {
		return err
	}
	rid := ical.NewProp(ical.PropRecurrenceID)
	setTimeValue(rid, s.start, isDate)
	c.Props.Set(rid)
	setTimeValue(start, s.start, isDate)

	if end := c.Props.Get(endName); endName != "" && end != nil {
		_, endIsDate, err := g.tz.parseTime(end)
		if err != nil {
			return err
		}
		setTimeValue(end, s.end, endIsDate)
	}
	return nil
}

// setTimeValue sets p to t as a DATE or as a UTC DATE-TIME. Dates are
// parsed as midnight UTC, so t's UTC date is the date.
func setTimeValue(p *ical.Prop, t time.Time, isDate bool) {
	p.Params.Del(ical.PropTimezoneID)
	if isDate {
		p.Params.Set(ical.ParamValue, string(ical.ValueDate))
		p.Value = t.UTC().Format("20060102")
		return
	}
	p.Params.Del(ical.ParamValue)
	p.Value = t.UTC().Format("20060102T150405Z")
}

// dateTimeProps are the properties whose values may be local or floating
// date-times (RFC 5545 section 3.3.5), apart from any with a TZID.
var dateTimeProps = map[string]bool{
	ical.PropDateTimeStart: true, ical.PropDateTimeEnd: true, ical.PropDue: true, ical.PropRecurrenceID: true,
}

// convertToUTC rewrites the local and floating date-times of c and its
// children, such as VALARM, as UTC, so that c needs no VTIMEZONE.
func (tz *timeZones) convertToUTC(c *ical.Component) error {
	for name, props := range c.Props {
		for i := range props {
			p := &props[i]
			if !dateTimeProps[name] && p.Params.Get(ical.PropTimezoneID) == "" {
				continue
			}
			times, isDate, err := tz.parseTimes(p)
			if err != nil && !dateTimeProps[name] {
				continue // an unknown property with a TZID stays as it is
			}
			if err != nil {
				return err
			}
			if isDate {
				continue
			}
			values := make([]string, len(times))
			for j, t := range times {
				values[j] = t.UTC().Format("20060102T150405Z")
			}
			p.Params.Del(ical.PropTimezoneID)
			p.Value = strings.Join(values, ",")
		}
	}
	for _, child := range c.Children {
		if err := tz.convertToUTC(child); err != nil {
			return err
		}
	}
	return nil
}

// limitRecurrenceSet removes the overrides of cal that do not impact w
// (RFC 4791 section 9.6.6): an override impacts w when its own occurrence
// or the one it replaces overlaps w. The masters and VTIMEZONEs stay.
// changed reports whether any override was removed.
func limitRecurrenceSet(cal *ical.Calendar, w timeWindow) (changed bool, err error) {
	tz := newTimeZones(cal)
	drop := map[*ical.Component]bool{}
	for _, name := range []string{ical.CompEvent, ical.CompToDo, ical.CompJournal} {
		g, err := newComponentGroup(cal, tz, name)
		if err != nil {
			return false, err
		}
		if err := g.markUnimpacted(w, drop); err != nil {
			return false, err
		}
	}
	if len(drop) == 0 {
		return false, nil
	}
	cal.Children = slices.DeleteFunc(cal.Children, func(c *ical.Component) bool { return drop[c] })
	return true, nil
}

// markUnimpacted adds the overrides of g that do not impact w to drop.
func (g *componentGroup) markUnimpacted(w timeWindow, drop map[*ical.Component]bool) error {
	var length time.Duration
	if g.master != nil {
		first, dated, err := g.tz.firstSpan(g.master)
		if err != nil {
			return err
		}
		if dated {
			length = first.end.Sub(first.start)
		}
	}
	for _, o := range g.overrides {
		s, dated, err := g.tz.firstSpan(o.component)
		if err != nil {
			return err
		}
		if !dated || s.overlaps(w) {
			continue
		}
		if g.master == nil {
			length = s.end.Sub(s.start)
		}
		original := span{start: o.recurrenceID, end: o.recurrenceID.Add(length), instant: length == 0}
		if !original.overlaps(w) {
			drop[o.component] = true
		}
	}
	return nil
}

// cloneComponent returns a deep copy of c, so that changes to the copy
// leave the parsed object as it is.
func cloneComponent(c *ical.Component) *ical.Component {
	out := &ical.Component{Name: c.Name, Props: cloneProps(c.Props)}
	for _, child := range c.Children {
		out.Children = append(out.Children, cloneComponent(child))
	}
	return out
}

func cloneProps(props ical.Props) ical.Props {
	out := make(ical.Props, len(props))
	for name, list := range props {
		copied := make([]ical.Prop, len(list))
		for i, p := range list {
			copied[i] = ical.Prop{Name: p.Name, Value: p.Value, Params: make(ical.Params, len(p.Params))}
			for k, v := range p.Params {
				copied[i].Params[k] = slices.Clone(v)
			}
		}
		out[name] = copied
	}
	return out
}
