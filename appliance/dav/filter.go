package dav

import (
	"encoding/xml"
	"net/http"
	"strings"
	"time"

	"github.com/emersion/go-ical"
	"github.com/emersion/go-vcard"
	"github.com/emersion/go-webdav/caldav"
)

// calendarFilter is a parsed CALDAV:filter (RFC 4791 section 9.7) in
// go-webdav's model.
type calendarFilter struct {
	root caldav.CompFilter
}

func newCalendarFilter(x *compFilterXML) (*calendarFilter, error) {
	if x.Name != "VCALENDAR" {
		return nil, httpErrorf(http.StatusForbidden, "the outer comp-filter must name VCALENDAR, not %q", x.Name)
	}
	root, err := convertCompFilter(x)
	if err != nil {
		return nil, err
	}
	return &calendarFilter{root: root}, nil
}

func convertCompFilter(x *compFilterXML) (caldav.CompFilter, error) {
	f := caldav.CompFilter{Name: strings.ToUpper(x.Name), IsNotDefined: x.IsNotDefined != nil}
	var err error
	if x.TimeRange != nil {
		if f.Start, f.End, err = parseTimeRange(x.TimeRange); err != nil {
			return f, err
		}
	}
	for i := range x.CompFilters {
		child, err := convertCompFilter(&x.CompFilters[i])
		if err != nil {
			return f, err
		}
		f.Comps = append(f.Comps, child)
	}
	for i := range x.PropFilters {
		pf, err := convertPropFilter(&x.PropFilters[i])
		if err != nil {
			return f, err
		}
		f.Props = append(f.Props, pf)
	}
	return f, nil
}

func convertPropFilter(x *propFilterXML) (caldav.PropFilter, error) {
	pf := caldav.PropFilter{Name: strings.ToUpper(x.Name), IsNotDefined: x.IsNotDefined != nil}
	var err error
	if x.TimeRange != nil {
		if pf.Start, pf.End, err = parseTimeRange(x.TimeRange); err != nil {
			return pf, err
		}
	}
	// NOTE: caldav.TextMatch has no collation, so a calendar text-match
	// with i;octet compares case-insensitively too.
	if x.TextMatch != nil {
		pf.TextMatch = &caldav.TextMatch{Text: x.TextMatch.Text, NegateCondition: x.TextMatch.NegateCondition == "yes"}
	}
	for _, p := range x.ParamFilters {
		param := caldav.ParamFilter{Name: strings.ToUpper(p.Name), IsNotDefined: p.IsNotDefined != nil}
		if p.TextMatch != nil {
			param.TextMatch = &caldav.TextMatch{Text: p.TextMatch.Text, NegateCondition: p.TextMatch.NegateCondition == "yes"}
		}
		pf.ParamFilter = append(pf.ParamFilter, param)
	}
	return pf, nil
}

// parseTimeRange reads the UTC bounds of a time-range element (RFC 4791
// section 9.9). A missing bound is open.
func parseTimeRange(x *timeRangeXML) (start, end time.Time, err error) {
	if x.Start == "" && x.End == "" {
		return start, end, httpErrorf(http.StatusBadRequest, "time-range needs start or end")
	}
	parse := func(v string) (time.Time, error) {
		if v == "" {
			return time.Time{}, nil
		}
		return parseUTCBound("time-range", v)
	}
	if start, err = parse(x.Start); err != nil {
		return
	}
	if end, err = parse(x.End); err != nil {
		return
	}
	if start.IsZero() {
		// A start of zero means open to the store, so use the earliest
		// time that iCalendar can express.
		start = time.Date(1, 1, 1, 0, 0, 0, 1, time.UTC)
	}
	return start, end, nil
}

// parseUTCBound parses v, a bound of the element named element, as an
// iCalendar date with UTC time (RFC 5545 section 3.3.5, form 2).
func parseUTCBound(element, v string) (time.Time, error) {
	t, err := time.Parse("20060102T150405Z", v)
	if err != nil {
		return t, httpErrorf(http.StatusBadRequest, "invalid CALDAV:%s bound %q, want a UTC date-time like 20260101T000000Z", element, v)
	}
	return t, nil
}

// window returns the time range of the first component filter below
// VCALENDAR, which all results must fit, for the store's first pass.
func (f *calendarFilter) window() *timeWindow {
	for _, c := range f.root.Comps {
		if !c.IsNotDefined && !c.Start.IsZero() {
			return &timeWindow{start: c.Start, end: c.End}
		}
	}
	return nil
}

// matches parses data and evaluates the filter on it.
func (f *calendarFilter) matches(data []byte) (bool, error) {
	cal, err := decodeOneCalendar(data)
	if err != nil {
		return false, err
	}
	m := &calendarMatcher{cal: cal, tz: newTimeZones(cal)}
	return m.comp(f.root, []*ical.Component{cal.Component})
}

// calendarMatcher evaluates a filter on one calendar object.
type calendarMatcher struct {
	cal *ical.Calendar
	tz  *timeZones
}

// comp reports whether the components named by f among comps satisfy it:
// a time range holds for any occurrence of the recurring set, and nested
// filters must all hold for one of the components.
func (m *calendarMatcher) comp(f caldav.CompFilter, comps []*ical.Component) (bool, error) {
	var named []*ical.Component
	for _, c := range comps {
		if c.Name == f.Name {
			named = append(named, c)
		}
	}
	if f.IsNotDefined {
		return len(named) == 0, nil
	}
	if len(named) == 0 {
		return false, nil
	}

	if !f.Start.IsZero() && calendarComponents[f.Name] {
		g, err := newComponentGroup(m.cal, m.tz, f.Name)
		if err != nil {
			return false, err
		}
		ok, err := g.matchesWindow(timeWindow{start: f.Start, end: f.End})
		if err != nil || !ok {
			return false, err
		}
	}
	// NOTE: time ranges on VALARM and VFREEBUSY components are not
	// evaluated; such filters match on the other conditions alone.

	for _, c := range named {
		ok, err := m.all(f, c)
		if err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

func (m *calendarMatcher) all(f caldav.CompFilter, c *ical.Component) (bool, error) {
	for _, child := range f.Comps {
		ok, err := m.comp(child, c.Children)
		if err != nil || !ok {
			return false, err
		}
	}
	for _, pf := range f.Props {
		ok, err := m.prop(pf, c)
		if err != nil || !ok {
			return false, err
		}
	}
	return true, nil
}

// prop evaluates a prop-filter (RFC 4791 section 9.7.2): one of the
// component's properties of that name must satisfy all its conditions.
func (m *calendarMatcher) prop(f caldav.PropFilter, c *ical.Component) (bool, error) {
	props := c.Props.Values(f.Name)
	if f.IsNotDefined {
		return len(props) == 0, nil
	}
	for i := range props {
		ok, err := m.propMatches(f, &props[i])
		if err != nil || ok {
			return ok, err
		}
	}
	return false, nil
}

func (m *calendarMatcher) propMatches(f caldav.PropFilter, p *ical.Prop) (bool, error) {
	if !f.Start.IsZero() {
		t, _, err := m.tz.parseTime(p)
		if err != nil {
			return false, err
		}
		if !(span{start: t, end: t, instant: true}).overlaps(timeWindow{start: f.Start, end: f.End}) {
			return false, nil
		}
	}
	if f.TextMatch != nil && !textMatches(f.TextMatch, p.Value) {
		return false, nil
	}
	for _, pf := range f.ParamFilter {
		values := p.Params.Values(pf.Name)
		if pf.IsNotDefined != (len(values) == 0) {
			return false, nil
		}
		if pf.TextMatch != nil && !anyTextMatches(pf.TextMatch, values) {
			return false, nil
		}
	}
	return true, nil
}

// textMatches applies a text-match as a case-insensitive substring test,
// which the default collation i;ascii-casemap of RFC 4791 section 9.7.5
// requires for ASCII letters.
func textMatches(t *caldav.TextMatch, value string) bool {
	ok := strings.Contains(strings.ToLower(value), strings.ToLower(t.Text))
	return ok != t.NegateCondition
}

func anyTextMatches(t *caldav.TextMatch, values []string) bool {
	for _, v := range values {
		if textMatches(t, v) {
			return true
		}
	}
	return false
}

// addressbookQuery is a CARDDAV:filter (RFC 6352 section 10.5) with the
// result limit. go-webdav's carddav.Match is not used because it ignores
// the collation, compares only a property's first instance and skips
// param-filter.
type addressbookQuery struct {
	test    string // anyof or allof
	filters []cardPropFilterXML
	limit   int
}

func newAddressbookQuery(body *reportBody) (*addressbookQuery, error) {
	query := &addressbookQuery{test: "anyof"}
	if body.CardLimit != nil {
		query.limit = body.CardLimit.NResults
	}
	if body.CardFilter == nil {
		return query, nil
	}
	if t := body.CardFilter.Test; t != "" {
		query.test = t
	}
	query.filters = body.CardFilter.PropFilters
	if err := checkTest(query.test); err != nil {
		return nil, err
	}
	for _, f := range query.filters {
		if err := checkTest(f.Test); err != nil {
			return nil, err
		}
		for _, tm := range f.TextMatches {
			if err := checkTextMatch(tm); err != nil {
				return nil, err
			}
		}
	}
	return query, nil
}

func checkTest(test string) error {
	if test != "" && test != "anyof" && test != "allof" {
		return httpErrorf(http.StatusBadRequest, "invalid filter test %q, want anyof or allof", test)
	}
	return nil
}

// checkTextMatch accepts the collations of RFC 4790 that RFC 6352
// section 8.3 requires and the match types of section 10.5.4.
func checkTextMatch(tm textMatchXML) error {
	switch tm.Collation {
	case "", "i;ascii-casemap", "i;unicode-casemap", "i;octet":
	default:
		return preconditionError(http.StatusPreconditionFailed, xml.Name{Space: nsCardDAV, Local: "supported-collation"}, "collation %q is not supported", tm.Collation)
	}
	switch tm.MatchType {
	case "", "equals", "contains", "starts-with", "ends-with":
		return nil
	}
	return httpErrorf(http.StatusBadRequest, "invalid match-type %q", tm.MatchType)
}

// matches parses data and applies the filter. A query without filters
// matches every vCard.
func (query *addressbookQuery) matches(data []byte) (bool, error) {
	if len(query.filters) == 0 {
		return true, nil
	}
	card, err := decodeOneVCard(data)
	if err != nil {
		return false, err
	}
	return combine(query.test, len(query.filters), func(i int) bool { return propFilterMatches(&query.filters[i], card) }), nil
}

// combine applies test ("anyof", the default, or "allof") to n results.
func combine(test string, n int, result func(i int) bool) bool {
	all := test == "allof"
	for i := 0; i < n; i++ {
		if result(i) != all {
			return !all
		}
	}
	return all
}

// propFilterMatches reports whether one instance of the property
// satisfies the filter's param-filters and text-matches (RFC 6352
// section 10.5.1).
func propFilterMatches(f *cardPropFilterXML, card vcard.Card) bool {
	fields := card[strings.ToUpper(f.Name)]
	if f.IsNotDefined != nil {
		return len(fields) == 0
	}
	for _, field := range fields {
		if fieldMatches(f, field) {
			return true
		}
	}
	return false
}

func fieldMatches(f *cardPropFilterXML, field *vcard.Field) bool {
	for _, p := range f.ParamFilters {
		values := field.Params[strings.ToUpper(p.Name)]
		if (p.IsNotDefined != nil) != (len(values) == 0) {
			return false
		}
		if p.TextMatch != nil && !anyCardTextMatches(*p.TextMatch, values) {
			return false
		}
	}
	if len(f.TextMatches) == 0 {
		return true
	}
	return combine(f.Test, len(f.TextMatches), func(i int) bool { return cardTextMatches(f.TextMatches[i], field.Value) })
}

func anyCardTextMatches(tm textMatchXML, values []string) bool {
	for _, v := range values {
		if cardTextMatches(tm, v) {
			return true
		}
	}
	return false
}

// cardTextMatches applies a text-match. Every collation except i;octet
// compares case-insensitively; i;unicode-casemap, the default, folds all
// of Unicode.
func cardTextMatches(tm textMatchXML, value string) bool {
	text := tm.Text
	if tm.Collation != "i;octet" {
		text, value = strings.ToLower(text), strings.ToLower(value)
	}
	var ok bool
	switch tm.MatchType {
	case "equals":
		ok = value == text
	case "starts-with":
		ok = strings.HasPrefix(value, text)
	case "ends-with":
		ok = strings.HasSuffix(value, text)
	default:
		ok = strings.Contains(value, text)
	}
	return ok != (tm.NegateCondition == "yes")
}
