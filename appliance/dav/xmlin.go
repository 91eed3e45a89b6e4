package dav

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"net/http"
	"strings"
)

// anyElement is an element of any name, for property names in PROPFIND
// and property values in PROPPATCH and MKCOL. Its content is kept as XML
// in which every element declares its own namespace, so that it stays
// valid when written into another document.
type anyElement struct {
	XMLName  xml.Name
	Inner    string
	Children []xml.StartElement // the direct child elements
}

// UnmarshalXML implements xml.Unmarshaler.
func (e *anyElement) UnmarshalXML(d *xml.Decoder, start xml.StartElement) error {
	e.XMLName = start.Name
	var b bytes.Buffer
	var closing []string
	for {
		tok, err := d.Token()
		if err != nil {
			return err
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if len(closing) == 0 {
				e.Children = append(e.Children, t.Copy())
			}
			closing = append(closing, openTag(&b, t.Name))
			for _, a := range t.Attr {
				if a.Name.Space == "" {
					b.WriteString(" " + a.Name.Local + `="` + escape(a.Value) + `"`)
				}
			}
			b.WriteString(">")
		case xml.EndElement:
			if len(closing) == 0 {
				e.Inner = b.String()
				return nil
			}
			b.WriteString(closing[len(closing)-1])
			closing = closing[:len(closing)-1]
		case xml.CharData:
			xml.EscapeText(&b, t)
		}
	}
}

// childrenNamed returns the direct child elements called name.
func (e *anyElement) childrenNamed(name xml.Name) []xml.StartElement {
	var out []xml.StartElement
	for _, c := range e.Children {
		if c.Name == name {
			out = append(out, c)
		}
	}
	return out
}

type propList struct {
	Elements []anyElement `xml:",any"`
}

func (p *propList) names() []xml.Name {
	names := make([]xml.Name, 0, len(p.Elements))
	for _, e := range p.Elements {
		names = append(names, e.XMLName)
	}
	return names
}

// propfindBody is the PROPFIND request body (RFC 4918 section 14.20).
type propfindBody struct {
	XMLName  xml.Name  `xml:"DAV: propfind"`
	AllProp  *struct{} `xml:"DAV: allprop"`
	PropName *struct{} `xml:"DAV: propname"`
	Prop     *propList `xml:"DAV: prop"`
}

// setRemove is a DAV:set or DAV:remove instruction (RFC 4918 section
// 14.23 and 14.26).
type setRemove struct {
	Prop propList `xml:"DAV: prop"`
}

// propertyUpdate is the PROPPATCH body (RFC 4918 section 14.19).
type propertyUpdate struct {
	XMLName xml.Name    `xml:"DAV: propertyupdate"`
	Set     []setRemove `xml:"DAV: set"`
	Remove  []setRemove `xml:"DAV: remove"`
}

// mkcolBody is the body of MKCALENDAR (RFC 4791 section 5.3.1) and of an
// extended MKCOL (RFC 5689 section 5.1).
type mkcolBody struct {
	XMLName xml.Name
	Set     []setRemove `xml:"DAV: set"`
}

// reportBody is the union of the REPORT bodies that this package serves,
// and XMLName is the report's name.
type reportBody struct {
	XMLName     xml.Name
	AllProp     *struct{}      `xml:"DAV: allprop"`
	Prop        *propList      `xml:"DAV: prop"`
	Hrefs       []string       `xml:"DAV: href"`
	CalFilter   *calFilterXML  `xml:"urn:ietf:params:xml:ns:caldav filter"`
	CardFilter  *cardFilterXML `xml:"urn:ietf:params:xml:ns:carddav filter"`
	CardLimit   *limitXML      `xml:"urn:ietf:params:xml:ns:carddav limit"`
	SyncLimit   *limitXML      `xml:"DAV: limit"`
	SyncToken   *string        `xml:"DAV: sync-token"`
	SyncLevel   string         `xml:"DAV: sync-level"`
	CalTimezone *string        `xml:"urn:ietf:params:xml:ns:caldav timezone"`
}

type limitXML struct {
	NResults int `xml:"nresults"`
}

type calFilterXML struct {
	CompFilter compFilterXML `xml:"urn:ietf:params:xml:ns:caldav comp-filter"`
}

type compFilterXML struct {
	Name         string           `xml:"name,attr"`
	IsNotDefined *struct{}        `xml:"urn:ietf:params:xml:ns:caldav is-not-defined"`
	TimeRange    *timeRangeXML    `xml:"urn:ietf:params:xml:ns:caldav time-range"`
	CompFilters  []compFilterXML  `xml:"urn:ietf:params:xml:ns:caldav comp-filter"`
	PropFilters  []propFilterXML  `xml:"urn:ietf:params:xml:ns:caldav prop-filter"`
	ParamFilters []paramFilterXML `xml:"urn:ietf:params:xml:ns:caldav param-filter"`
}

type timeRangeXML struct {
	Start string `xml:"start,attr"`
	End   string `xml:"end,attr"`
}

type propFilterXML struct {
	Name         string           `xml:"name,attr"`
	IsNotDefined *struct{}        `xml:"urn:ietf:params:xml:ns:caldav is-not-defined"`
	TimeRange    *timeRangeXML    `xml:"urn:ietf:params:xml:ns:caldav time-range"`
	TextMatch    *textMatchXML    `xml:"urn:ietf:params:xml:ns:caldav text-match"`
	ParamFilters []paramFilterXML `xml:"urn:ietf:params:xml:ns:caldav param-filter"`
}

type paramFilterXML struct {
	Name         string        `xml:"name,attr"`
	IsNotDefined *struct{}     `xml:"is-not-defined"`
	TextMatch    *textMatchXML `xml:"text-match"`
}

type textMatchXML struct {
	Text            string `xml:",chardata"`
	Collation       string `xml:"collation,attr"`
	NegateCondition string `xml:"negate-condition,attr"`
	MatchType       string `xml:"match-type,attr"`
}

type cardFilterXML struct {
	Test        string              `xml:"test,attr"`
	PropFilters []cardPropFilterXML `xml:"urn:ietf:params:xml:ns:carddav prop-filter"`
}

type cardPropFilterXML struct {
	Name         string           `xml:"name,attr"`
	Test         string           `xml:"test,attr"`
	IsNotDefined *struct{}        `xml:"urn:ietf:params:xml:ns:carddav is-not-defined"`
	TextMatches  []textMatchXML   `xml:"urn:ietf:params:xml:ns:carddav text-match"`
	ParamFilters []paramFilterXML `xml:"urn:ietf:params:xml:ns:carddav param-filter"`
}

// readXMLBody decodes the request body into v. An empty body returns
// false. The body is limited to maxXMLBodySize, and encoding/xml does not
// expand entities that a DTD declares, so an entity bomb fails as an
// undefined entity.
func readXMLBody(r *http.Request, v any) (bool, error) {
	if r.ContentLength > maxXMLBodySize {
		return false, httpErrorf(http.StatusRequestEntityTooLarge, "XML request body of %d bytes is larger than the limit of %d bytes", r.ContentLength, maxXMLBodySize)
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxXMLBodySize+1))
	if err != nil {
		return false, httpErrorf(http.StatusBadRequest, "reading request body failed")
	}
	if len(body) > maxXMLBodySize {
		return false, httpErrorf(http.StatusRequestEntityTooLarge, "XML request body is larger than the limit of %d bytes", maxXMLBodySize)
	}
	if strings.TrimSpace(string(body)) == "" {
		return false, nil
	}

	dec := xml.NewDecoder(strings.NewReader(string(body)))
	dec.Strict = true
	if err := dec.Decode(v); err != nil {
		var se *xml.SyntaxError
		if errors.As(err, &se) {
			return false, httpErrorf(http.StatusBadRequest, "invalid XML request body: line %d: %s", se.Line, se.Msg)
		}
		return false, httpErrorf(http.StatusBadRequest, "invalid XML request body: %v", err)
	}
	return true, nil
}
