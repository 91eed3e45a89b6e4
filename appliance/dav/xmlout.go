package dav

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"net/http"
	"strconv"
	"strings"
)

// XML namespaces of the properties and reports this package serves.
const (
	nsDAV     = "DAV:"
	nsCalDAV  = "urn:ietf:params:xml:ns:caldav"
	nsCardDAV = "urn:ietf:params:xml:ns:carddav"
	nsCS      = "http://calendarserver.org/ns/"
	nsApple   = "http://apple.com/ns/ical/"
)

// prefixes maps the namespaces declared on every multistatus root to their
// prefixes. Other namespaces are declared on the element itself.
var prefixes = map[string]string{nsDAV: "D", nsCalDAV: "C", nsCardDAV: "CR", nsCS: "CS", nsApple: "I"}

const rootNamespaces = ` xmlns:D="DAV:" xmlns:C="urn:ietf:params:xml:ns:caldav" xmlns:CR="urn:ietf:params:xml:ns:carddav" xmlns:CS="http://calendarserver.org/ns/" xmlns:I="http://apple.com/ns/ical/"`

// httpError is an error that reaches the client with its status code. A
// non-empty condition names a precondition element (RFC 4918 section 16)
// that the body carries in a DAV:error element.
type httpError struct {
	code      int
	msg       string
	condition xml.Name
}

func (e *httpError) Error() string { return e.msg }

func httpErrorf(code int, format string, args ...any) error {
	return &httpError{code: code, msg: fmt.Sprintf(format, args...)}
}

// preconditionError returns an error with the precondition element cond.
func preconditionError(code int, cond xml.Name, format string, args ...any) error {
	return &httpError{code: code, msg: fmt.Sprintf(format, args...), condition: cond}
}

// writeError sends err, which must be an *httpError, as plain text, or as
// a DAV:error body when it names a precondition.
func writeError(w http.ResponseWriter, err error) {
	he, ok := err.(*httpError)
	if !ok {
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	if he.condition.Local == "" {
		http.Error(w, he.msg, he.code)
		return
	}

	var b bytes.Buffer
	b.WriteString(xml.Header)
	b.WriteString(`<D:error` + rootNamespaces + `>`)
	writeEmptyElement(&b, he.condition)
	b.WriteString(`</D:error>`)
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	w.WriteHeader(he.code)
	w.Write(b.Bytes())
}

// openTag writes "<P:local" with a namespace declaration when the
// namespace has no prefix on the root, and returns the closing tag.
func openTag(b *bytes.Buffer, name xml.Name) (closing string) {
	if p, ok := prefixes[name.Space]; ok {
		b.WriteString("<" + p + ":" + name.Local)
		return "</" + p + ":" + name.Local + ">"
	}
	if name.Space == "" {
		b.WriteString("<" + name.Local)
		return "</" + name.Local + ">"
	}
	b.WriteString("<X:" + name.Local + ` xmlns:X="`)
	xml.EscapeText(b, []byte(name.Space))
	b.WriteString(`"`)
	return "</X:" + name.Local + ">"
}

func writeEmptyElement(b *bytes.Buffer, name xml.Name) {
	openTag(b, name)
	b.WriteString("/>")
}

// writeElement writes name with inner, which must already be XML.
func writeElement(b *bytes.Buffer, name xml.Name, inner string) {
	closing := openTag(b, name)
	b.WriteString(">")
	b.WriteString(inner)
	b.WriteString(closing)
}

// escape returns s as XML character data.
func escape(s string) string {
	var b strings.Builder
	xml.EscapeText(&b, []byte(s))
	return b.String()
}

// prop is a property with its value as XML.
type prop struct {
	name  xml.Name
	inner string
}

// multistatus builds a 207 Multi-Status body (RFC 4918 section 13).
type multistatus struct {
	b bytes.Buffer
}

func newMultistatus() *multistatus {
	m := &multistatus{}
	m.b.WriteString(xml.Header)
	m.b.WriteString(`<D:multistatus` + rootNamespaces + `>`)
	return m
}

// response adds a resource with its found properties (200) and the
// requested ones it lacks (404).
func (m *multistatus) response(href string, found []prop, missing []xml.Name) {
	m.b.WriteString("<D:response><D:href>" + escape(href) + "</D:href>")
	if len(found) > 0 || len(missing) == 0 {
		m.b.WriteString("<D:propstat><D:prop>")
		for _, p := range found {
			writeElement(&m.b, p.name, p.inner)
		}
		m.b.WriteString("</D:prop><D:status>HTTP/1.1 200 OK</D:status></D:propstat>")
	}
	m.propstat(missing, http.StatusNotFound)
	m.b.WriteString("</D:response>")
}

// propstatResponse adds a resource whose listed properties all share one
// status, as PROPPATCH reports them.
func (m *multistatus) propstatResponse(href string, groups map[int][]xml.Name) {
	m.b.WriteString("<D:response><D:href>" + escape(href) + "</D:href>")
	for _, code := range []int{http.StatusOK, http.StatusForbidden, http.StatusConflict, http.StatusFailedDependency} {
		m.propstat(groups[code], code)
	}
	m.b.WriteString("</D:response>")
}

func (m *multistatus) propstat(names []xml.Name, code int) {
	if len(names) == 0 {
		return
	}
	m.b.WriteString("<D:propstat><D:prop>")
	for _, n := range names {
		writeEmptyElement(&m.b, n)
	}
	m.b.WriteString("</D:prop>" + statusLine(code) + "</D:propstat>")
}

// statusResponse adds a resource with a status and no properties, as
// sync-collection reports a removed member (RFC 6578 section 3.5.2).
func (m *multistatus) statusResponse(href string, code int) {
	m.b.WriteString("<D:response><D:href>" + escape(href) + "</D:href>" + statusLine(code) + "</D:response>")
}

func (m *multistatus) syncToken(token string) {
	m.b.WriteString("<D:sync-token>" + escape(token) + "</D:sync-token>")
}

func (m *multistatus) send(w http.ResponseWriter) {
	m.b.WriteString("</D:multistatus>")
	w.Header().Set("Content-Type", "application/xml; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(m.b.Len()))
	w.WriteHeader(http.StatusMultiStatus)
	w.Write(m.b.Bytes())
}

func statusLine(code int) string {
	return "<D:status>HTTP/1.1 " + strconv.Itoa(code) + " " + http.StatusText(code) + "</D:status>"
}
