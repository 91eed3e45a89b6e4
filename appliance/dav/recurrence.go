package dav

import (
	"fmt"
	"math"
	"strings"
	"time"
	_ "time/tzdata" // the box has no zoneinfo files, and TZID names need them

	"github.com/emersion/go-ical"
	"github.com/teambition/rrule-go"
)

// maxInstances bounds how many occurrences of one recurring component are
// expanded, so that a rule like FREQ=SECONDLY cannot stall a query.
const maxInstances = 20000

// timeWindow is the range of a CalDAV time-range filter, start inclusive
// and end exclusive; a zero bound is open (RFC 4791 section 9.9).
type timeWindow struct {
	start, end time.Time
}

func (w *timeWindow) startUnix() int64 {
	if w.start.IsZero() {
		return math.MinInt64
	}
	return w.start.Unix()
}

func (w *timeWindow) endUnix() int64 {
	if w.end.IsZero() {
		return math.MaxInt64
	}
	return w.end.Unix()
}

// span is one occurrence. An instant (a VEVENT with DTSTART only, a VTODO
// with DUE only) has start == end and instant set.
type span struct {
	start, end time.Time
	instant    bool
}

// overlaps applies the table of RFC 4791 section 9.9.
func (s span) overlaps(w timeWindow) bool {
	beforeEnd := w.end.IsZero() || s.start.Before(w.end)
	if s.instant {
		return beforeEnd && !s.start.Before(w.start)
	}
	return beforeEnd && (w.start.IsZero() || s.end.After(w.start))
}

// timeZones resolves TZID parameters: by IANA name, then by the
// X-LIC-LOCATION of the object's VTIMEZONE, which Thunderbird and
// Evolution set for their own TZIDs.
type timeZones struct {
	byTZID map[string]*time.Location
}

func newTimeZones(cal *ical.Calendar) *timeZones {
	tz := &timeZones{byTZID: map[string]*time.Location{}}
	for _, c := range cal.Children {
		if c.Name != ical.CompTimezone {
			continue
		}
		id := c.Props.Get(ical.PropTimezoneID)
		if id == nil {
			continue
		}
		if loc, err := time.LoadLocation(id.Value); err == nil {
			tz.byTZID[id.Value] = loc
			continue
		}
		if lic := c.Props.Get("X-LIC-LOCATION"); lic != nil {
			if loc, err := time.LoadLocation(lic.Value); err == nil {
				tz.byTZID[id.Value] = loc
			}
		}
	}
	return tz
}

// location returns the zone of a TZID.
// NOTE: a TZID that is neither an IANA name nor has a VTIMEZONE with
// X-LIC-LOCATION is read as UTC; the VTIMEZONE rules are not evaluated.
func (tz *timeZones) location(tzid string) *time.Location {
	if loc, ok := tz.byTZID[tzid]; ok {
		return loc
	}
	if loc, err := time.LoadLocation(tzid); err == nil {
		tz.byTZID[tzid] = loc
		return loc
	}
	return time.UTC
}

// parseTimes parses the comma-separated DATE or DATE-TIME values of p
// (RFC 5545 section 3.3.4 and 3.3.5). Floating times and dates are read
// in UTC, the zone of a query without CALDAV:timezone.
func (tz *timeZones) parseTimes(p *ical.Prop) (times []time.Time, isDate bool, err error) {
	loc := time.UTC
	if id := p.Params.Get(ical.PropTimezoneID); id != "" {
		loc = tz.location(id)
	}
	isDate = p.Params.Get(ical.ParamValue) == "DATE"
	for _, v := range strings.Split(p.Value, ",") {
		v = strings.TrimSpace(v)
		var t time.Time
		switch {
		case len(v) == 8:
			isDate = true
			t, err = time.ParseInLocation("20060102", v, time.UTC)
		case strings.HasSuffix(v, "Z"):
			t, err = time.Parse("20060102T150405Z", v)
		default:
			t, err = time.ParseInLocation("20060102T150405", v, loc)
		}
		if err != nil {
			return nil, false, fmt.Errorf("invalid %s value %q: %w", p.Name, v, err)
		}
		times = append(times, t)
	}
	return times, isDate, nil
}

func (tz *timeZones) parseTime(p *ical.Prop) (time.Time, bool, error) {
	times, isDate, err := tz.parseTimes(p)
	if err != nil {
		return time.Time{}, false, err
	}
	if len(times) != 1 {
		return time.Time{}, false, fmt.Errorf("%s has %d values, want 1", p.Name, len(times))
	}
	return times[0], isDate, nil
}

// firstSpan returns the occurrence that a component's own DTSTART, DTEND,
// DUE and DURATION describe. ok is false for a VTODO or VJOURNAL without
// dates, which matches every time range.
func (tz *timeZones) firstSpan(c *ical.Component) (s span, ok bool, err error) {
	startProp := c.Props.Get(ical.PropDateTimeStart)
	endProp := c.Props.Get(ical.PropDateTimeEnd)
	if c.Name == ical.CompToDo {
		endProp = c.Props.Get(ical.PropDue)
	}

	if startProp == nil {
		if endProp == nil {
			return span{}, false, nil
		}
		due, _, err := tz.parseTime(endProp)
		return span{start: due, end: due, instant: true}, err == nil, err
	}

	start, isDate, err := tz.parseTime(startProp)
	if err != nil {
		return span{}, false, err
	}
	end, err := tz.spanEnd(c, start, isDate, endProp)
	if err != nil {
		return span{}, false, err
	}
	return span{start: start, end: end, instant: end.Equal(start)}, true, nil
}

// spanEnd returns the end of an occurrence from DTEND (or DUE), from
// DURATION, or by RFC 5545 section 3.6.1: one day for a DATE start.
func (tz *timeZones) spanEnd(c *ical.Component, start time.Time, isDate bool, endProp *ical.Prop) (time.Time, error) {
	if endProp != nil {
		end, _, err := tz.parseTime(endProp)
		return end, err
	}
	if d := c.Props.Get(ical.PropDuration); d != nil {
		dur, err := d.Duration()
		if err != nil {
			return time.Time{}, fmt.Errorf("invalid DURATION %q: %w", d.Value, err)
		}
		return start.Add(dur), nil
	}
	if isDate && c.Name != ical.CompToDo {
		return start.AddDate(0, 0, 1), nil
	}
	return start, nil
}

// componentGroup is the master and the overrides (RECURRENCE-ID) of one
// recurring component type in a calendar object.
type componentGroup struct {
	tz        *timeZones
	master    *ical.Component
	overrides []override
	replaced  map[int64]bool // Unix seconds of the RECURRENCE-IDs
}

// override is a component with RECURRENCE-ID and the parsed value of that
// property.
type override struct {
	component    *ical.Component
	recurrenceID time.Time
}

// instance is one occurrence of a component group.
type instance struct {
	span
	dated bool // false for a VTODO or VJOURNAL without dates
	// component is the override that describes the occurrence, or the
	// master for an occurrence that its recurrence set generates.
	component *ical.Component
	override  bool
}

// newComponentGroup collects the components called name in cal.
// NOTE: an override with RANGE=THISANDFUTURE replaces only the occurrence
// its RECURRENCE-ID names, not the later ones.
func newComponentGroup(cal *ical.Calendar, tz *timeZones, name string) (*componentGroup, error) {
	g := &componentGroup{tz: tz, replaced: map[int64]bool{}}
	for _, c := range cal.Children {
		if c.Name != name {
			continue
		}
		rid := c.Props.Get(ical.PropRecurrenceID)
		if rid == nil {
			g.master = c
			continue
		}
		t, _, err := tz.parseTime(rid)
		if err != nil {
			return nil, err
		}
		g.overrides = append(g.overrides, override{component: c, recurrenceID: t})
		g.replaced[t.Unix()] = true
	}
	return g, nil
}

// each calls fn for every override, then for every occurrence of the
// master in start order, until fn returns false. Occurrences that end
// before from may be skipped, and a zero from skips none. Expansion stops
// after maxInstances occurrences. An undated VTODO is reported with dated
// false.
func (g *componentGroup) each(from time.Time, fn func(in instance) bool) error {
	for _, o := range g.overrides {
		s, dated, err := g.tz.firstSpan(o.component)
		if err != nil {
			return err
		}
		if !fn(instance{span: s, dated: dated, component: o.component, override: true}) {
			return nil
		}
	}
	if g.master == nil {
		return nil
	}

	first, dated, err := g.tz.firstSpan(g.master)
	if err != nil {
		return err
	}
	if !dated {
		fn(instance{span: first, component: g.master})
		return nil
	}
	length := first.end.Sub(first.start)
	if !from.IsZero() {
		from = from.Add(-length)
	}
	set, err := g.recurrenceSet(first.start, from)
	if err != nil {
		return err
	}
	if set == nil {
		fn(instance{span: first, dated: true, component: g.master})
		return nil
	}

	next := set.Iterator()
	for i := 0; i < maxInstances; i++ {
		t, ok := next()
		if !ok {
			return nil
		}
		if g.replaced[t.Unix()] {
			continue
		}
		s := span{start: t, end: t.Add(length), instant: first.instant}
		if !fn(instance{span: s, dated: true, component: g.master}) {
			return nil
		}
	}
	return nil
}

// eachInWindow calls fn for every instance that overlaps w and for an
// undated one, until fn returns false.
func (g *componentGroup) eachInWindow(w timeWindow, fn func(in instance) bool) error {
	return g.each(w.start, func(in instance) bool {
		if !in.dated || in.overlaps(w) {
			return fn(in)
		}
		// The master's occurrences come in start order, so expansion
		// stops once it passes the window.
		return in.override || w.end.IsZero() || in.start.Before(w.end)
	})
}

// unbounded reports whether the master's RRULE has neither COUNT nor
// UNTIL.
func (g *componentGroup) unbounded() bool {
	if g.master == nil {
		return false
	}
	rr := g.master.Props.Get(ical.PropRecurrenceRule)
	if rr == nil {
		return false
	}
	upper := strings.ToUpper(rr.Value)
	return !strings.Contains(upper, "COUNT=") && !strings.Contains(upper, "UNTIL=")
}

// recurrenceSet returns the set that RRULE, RDATE and EXDATE of the master
// describe (RFC 5545 section 3.8.5), or nil when it does not recur. DTSTART
// is always the first instance. The set may lack occurrences of the RRULE
// that start before from.
func (g *componentGroup) recurrenceSet(dtstart, from time.Time) (*rrule.Set, error) {
	m := g.master
	rr := m.Props.Get(ical.PropRecurrenceRule)
	rdates := m.Props.Values(ical.PropRecurrenceDates)
	if rr == nil && len(rdates) == 0 {
		return nil, nil
	}

	set := &rrule.Set{}
	if rr != nil {
		opt, err := rrule.StrToROptionInLocation(rr.Value, dtstart.Location())
		if err != nil {
			return nil, fmt.Errorf("invalid RRULE %q: %w", rr.Value, err)
		}
		opt.Dtstart = ruleStartNear(*opt, dtstart, from)
		rule, err := rrule.NewRRule(*opt)
		if err != nil {
			return nil, fmt.Errorf("invalid RRULE %q: %w", rr.Value, err)
		}
		set.RRule(rule)
	}
	set.RDate(dtstart)
	for _, p := range rdates {
		if p.Params.Get(ical.ParamValue) == "PERIOD" {
			// NOTE: RDATE periods are not expanded; their own lengths are ignored.
			continue
		}
		times, _, err := g.tz.parseTimes(&p)
		if err != nil {
			return nil, err
		}
		for _, t := range times {
			set.RDate(t)
		}
	}
	for _, p := range m.Props.Values(ical.PropExceptionDates) {
		times, _, err := g.tz.parseTimes(&p)
		if err != nil {
			return nil, err
		}
		for _, t := range times {
			set.ExDate(t)
		}
	}
	return set, nil
}

// ruleStartNear returns a DTSTART for the rule that yields the same
// occurrences from shortly before from on (two days, or three hours for
// SECONDLY), so that a query far
// after DTSTART does not spend maxInstances on earlier occurrences. It
// moves DTSTART only for a FREQ of SECONDLY to DAILY without COUNT and
// without BYxxx parts. Such a rule yields DTSTART plus every multiple of
// INTERVAL (RFC 5545 section 3.3.10). rrule-go v1.8.2 adds those multiples
// to the local date and time fields of DTSTART.
func ruleStartNear(opt rrule.ROption, dtstart, from time.Time) time.Time {
	step, ok := fixedStep(opt)
	if !ok || from.IsZero() {
		return dtstart
	}
	// Local times are compared as if they were UTC, which is how rrule-go
	// steps them. The margin covers a change of UTC offset: two days, but
	// for short steps only three hours, so that the occurrences before from
	// stay well below maxInstances (three hours are 10,800 of SECONDLY).
	margin := 48 * time.Hour
	if step*maxInstances/4 < margin {
		margin = max(3*time.Hour, step*maxInstances/4)
	}
	loc := dtstart.Location()
	start := localFields(dtstart)
	target := localFields(from.In(loc)).Add(-margin)
	if !target.After(start) {
		return dtstart
	}
	steps := target.Sub(start) / step
	backoff := (3*time.Hour + step - 1) / step
	for try := 0; try < 3 && steps > 0; try++ {
		candidate := start.Add(steps * step)
		moved := time.Date(candidate.Year(), candidate.Month(), candidate.Day(), candidate.Hour(), candidate.Minute(), candidate.Second(), 0, loc)
		// A local time that a daylight saving gap skips would shift
		// every later occurrence, so step back over the gap.
		if localFields(moved).Equal(candidate) {
			return moved
		}
		steps -= backoff
	}
	return dtstart
}

// fixedStep returns the distance between the local times of two
// consecutive occurrences of a rule, if that is the same for all.
func fixedStep(opt rrule.ROption) (time.Duration, bool) {
	units := map[rrule.Frequency]time.Duration{
		rrule.SECONDLY: time.Second, rrule.MINUTELY: time.Minute,
		rrule.HOURLY: time.Hour, rrule.DAILY: 24 * time.Hour,
	}
	unit, ok := units[opt.Freq]
	if !ok || opt.Count > 0 || hasByParts(opt) {
		return 0, false
	}
	return time.Duration(max(opt.Interval, 1)) * unit, true
}

func hasByParts(opt rrule.ROption) bool {
	return len(opt.Bysetpos) > 0 || len(opt.Bymonth) > 0 || len(opt.Bymonthday) > 0 ||
		len(opt.Byyearday) > 0 || len(opt.Byweekno) > 0 || len(opt.Byweekday) > 0 ||
		len(opt.Byhour) > 0 || len(opt.Byminute) > 0 || len(opt.Bysecond) > 0 || len(opt.Byeaster) > 0
}

// localFields returns the date and time fields of t as a UTC time.
func localFields(t time.Time) time.Time {
	y, mo, d := t.Date()
	h, mi, s := t.Clock()
	return time.Date(y, mo, d, h, mi, s, 0, time.UTC)
}

// matchesWindow reports whether any occurrence of the group overlaps w.
func (g *componentGroup) matchesWindow(w timeWindow) (bool, error) {
	matched := false
	err := g.eachInWindow(w, func(instance) bool {
		matched = true
		return false
	})
	return matched, err
}

// objectRange returns the earliest start and latest end of all
// occurrences of the components in cal as Unix seconds. A side is nil when
// it is unbounded: for an undated VTODO, a rule without COUNT or UNTIL, or
// a rule with more than maxInstances occurrences.
func objectRange(cal *ical.Calendar) (start, end *int64, err error) {
	tz := newTimeZones(cal)
	var lo, hi time.Time
	openStart, openEnd := false, false
	for _, name := range []string{ical.CompEvent, ical.CompToDo, ical.CompJournal} {
		g, err := newComponentGroup(cal, tz, name)
		if err != nil {
			return nil, nil, err
		}
		unbounded := g.unbounded()
		openEnd = openEnd || unbounded
		n := 0
		err = g.each(time.Time{}, func(in instance) bool {
			if !in.dated {
				openStart, openEnd = true, true
				return false
			}
			if !in.override {
				n++
			}
			if lo.IsZero() || in.start.Before(lo) {
				lo = in.start
			}
			if hi.IsZero() || in.end.After(hi) {
				hi = in.end
			}
			// The first occurrence of an unbounded rule is its earliest.
			return in.override || !unbounded
		})
		if err != nil {
			return nil, nil, err
		}
		if n >= maxInstances {
			openEnd = true
		}
	}
	if lo.IsZero() {
		return nil, nil, nil
	}
	if !openStart {
		v := lo.Unix()
		start = &v
	}
	if !openEnd {
		v := hi.Unix()
		end = &v
	}
	return start, end, nil
}
