package dav

import (
	"bytes"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-ical"
)

// encodeCalendar writes cal as iCalendar text (RFC 5545 section 3.1):
// CRLF line ends, lines folded at 75 octets, properties sorted by name.
// go-ical's Encoder is not used because it rejects objects that PUT
// accepts, such as a VCALENDAR without PRODID, a VEVENT without DTSTAMP
// or a VCALENDAR without components.
func encodeCalendar(cal *ical.Calendar) []byte {
	var b bytes.Buffer
	writeComponent(&b, cal.Component)
	return b.Bytes()
}

func writeComponent(b *bytes.Buffer, c *ical.Component) {
	writeContentLine(b, "BEGIN:"+c.Name)
	names := make([]string, 0, len(c.Props))
	for name := range c.Props {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		for _, p := range c.Props[name] {
			writeContentLine(b, contentLine(&p))
		}
	}
	for _, child := range c.Children {
		writeComponent(b, child)
	}
	writeContentLine(b, "END:"+c.Name)
}

// contentLine returns p as "NAME;PARAM=value:value" (RFC 5545 section
// 3.1). The decoder has removed the quotes around parameter values, so
// values with a colon, semicolon or comma get them back.
func contentLine(p *ical.Prop) string {
	var b strings.Builder
	b.WriteString(p.Name)
	params := make([]string, 0, len(p.Params))
	for name := range p.Params {
		params = append(params, name)
	}
	slices.Sort(params)
	for _, name := range params {
		b.WriteString(";" + name + "=")
		for i, v := range p.Params[name] {
			if i > 0 {
				b.WriteString(",")
			}
			if strings.ContainsAny(v, ";:,") {
				v = `"` + v + `"`
			}
			b.WriteString(v)
		}
	}
	b.WriteString(":" + p.Value)
	return b.String()
}

// writeContentLine writes line folded into lines of at most 75 octets,
// each continuation starting with a space, without splitting a UTF-8
// sequence (RFC 5545 section 3.1).
func writeContentLine(b *bytes.Buffer, line string) {
	const maxOctets = 75
	limit := maxOctets
	for len(line) > limit {
		cut := limit
		for cut > 0 && !utf8.RuneStart(line[cut]) {
			cut--
		}
		b.WriteString(line[:cut])
		b.WriteString("\r\n ")
		line = line[cut:]
		limit = maxOctets - 1
	}
	b.WriteString(line)
	b.WriteString("\r\n")
}
