package dav

import (
	"encoding/xml"
	"net/http"
	"strconv"
	"strings"
)

// Property names that this package computes. The rest of a collection's
// properties are dead properties that PROPPATCH and MKCOL store.
var (
	propResourceType       = xml.Name{Space: nsDAV, Local: "resourcetype"}
	propDisplayName        = xml.Name{Space: nsDAV, Local: "displayname"}
	propGetETag            = xml.Name{Space: nsDAV, Local: "getetag"}
	propGetContentType     = xml.Name{Space: nsDAV, Local: "getcontenttype"}
	propGetContentLength   = xml.Name{Space: nsDAV, Local: "getcontentlength"}
	propGetLastModified    = xml.Name{Space: nsDAV, Local: "getlastmodified"}
	propCurrentUser        = xml.Name{Space: nsDAV, Local: "current-user-principal"}
	propPrincipalURL       = xml.Name{Space: nsDAV, Local: "principal-URL"}
	propOwner              = xml.Name{Space: nsDAV, Local: "owner"}
	propSyncToken          = xml.Name{Space: nsDAV, Local: "sync-token"}
	propSupportedReports   = xml.Name{Space: nsDAV, Local: "supported-report-set"}
	propPrivileges         = xml.Name{Space: nsDAV, Local: "current-user-privilege-set"}
	propCalendarHomeSet    = xml.Name{Space: nsCalDAV, Local: "calendar-home-set"}
	propAddressbookHomeSet = xml.Name{Space: nsCardDAV, Local: "addressbook-home-set"}
	propSupportedComps     = xml.Name{Space: nsCalDAV, Local: "supported-calendar-component-set"}
	propSupportedCalData   = xml.Name{Space: nsCalDAV, Local: "supported-calendar-data"}
	propSupportedAddrData  = xml.Name{Space: nsCardDAV, Local: "supported-address-data"}
	propCalMaxSize         = xml.Name{Space: nsCalDAV, Local: "max-resource-size"}
	propAddrMaxSize        = xml.Name{Space: nsCardDAV, Local: "max-resource-size"}
	propCalendarData       = xml.Name{Space: nsCalDAV, Local: "calendar-data"}
	propAddressData        = xml.Name{Space: nsCardDAV, Local: "address-data"}
	propGetCTag            = xml.Name{Space: nsCS, Local: "getctag"}
)

// protectedProps are computed, so PROPPATCH and MKCOL cannot set them
// (RFC 4918 section 16, cannot-modify-protected-property).
var protectedProps = map[xml.Name]bool{
	propResourceType: true, propGetETag: true, propGetContentType: true, propGetContentLength: true,
	propGetLastModified: true, propCurrentUser: true, propPrincipalURL: true, propOwner: true,
	propSyncToken: true, propSupportedReports: true, propPrivileges: true, propCalendarHomeSet: true,
	propAddressbookHomeSet: true, propSupportedComps: true, propSupportedCalData: true,
	propSupportedAddrData: true, propCalMaxSize: true, propAddrMaxSize: true, propCalendarData: true,
	propAddressData: true, propGetCTag: true, propLockDiscovery: true, propSupportedLock: true,
}

// propRequest is the property selection of a PROPFIND or REPORT: named
// properties, or all of them.
type propRequest struct {
	all       bool
	namesOnly bool // DAV:propname: names without values
	names     []xml.Name
}

func (p propRequest) wants(name xml.Name) bool {
	for _, n := range p.names {
		if n == name {
			return true
		}
	}
	return false
}

// resourceProps are the properties of one resource, values as XML.
type resourceProps struct {
	href   string
	values map[xml.Name]string
}

// add writes the response for r to m: the requested properties it has
// with 200 and the others with 404.
func (m *multistatus) add(r resourceProps, req propRequest) {
	var found []prop
	var missing []xml.Name
	if req.all {
		for n, v := range r.values {
			if req.namesOnly {
				v = ""
			}
			if n != propCalendarData && n != propAddressData {
				found = append(found, prop{n, v})
			}
		}
	}
	for _, n := range req.names {
		if v, ok := r.values[n]; ok {
			found = append(found, prop{n, v})
		} else {
			missing = append(missing, n)
		}
	}
	m.response(r.href, found, missing)
}

// propfind serves PROPFIND (RFC 4918 section 9.1) with Depth 0 and 1.
// Depth infinity gets 403 with propfind-finite-depth. A missing Depth
// header means 0, as in Radicale 3.1.8, rather than RFC 4918's infinity.
func (q *request) propfind() error {
	depth := q.r.Header.Get("Depth")
	switch depth {
	case "", "0":
		depth = "0"
	case "1":
	case "infinity":
		return preconditionError(http.StatusForbidden, condPropfindFiniteDepth, "Depth infinity is not supported, use 0 or 1")
	default:
		return httpErrorf(http.StatusBadRequest, "invalid Depth header %q, want 0 or 1", depth)
	}

	var body propfindBody
	present, err := readXMLBody(q.r, &body)
	if err != nil {
		return err
	}
	req := propRequest{all: !present || body.AllProp != nil || body.PropName != nil, namesOnly: present && body.PropName != nil}
	if present && body.Prop != nil {
		req.names = body.Prop.names()
	}

	resources, err := q.resources(depth == "1", req)
	if err != nil {
		return err
	}
	m := newMultistatus()
	for _, r := range resources {
		m.add(r, req)
	}
	m.send(q.w)
	return nil
}

// resources returns the properties of the target and, with children, of
// its members.
func (q *request) resources(children bool, req propRequest) ([]resourceProps, error) {
	switch q.target.typ {
	case targetRoot:
		return []resourceProps{q.rootProps()}, nil
	case targetPrincipal:
		return []resourceProps{q.principalProps()}, nil
	case targetHome:
		return q.homeResources(children)
	case targetCollection:
		return q.collectionResources(children, req)
	}
	return q.objectResource(req)
}

func (q *request) principalHref() string { return href("principals", q.login, "") }

func hrefXML(h string) string { return "<D:href>" + escape(h) + "</D:href>" }

// commonProps are the properties of every resource.
func (q *request) commonProps(href string, resourceType string) resourceProps {
	return resourceProps{href: href, values: map[xml.Name]string{
		propResourceType: resourceType,
		propCurrentUser:  hrefXML(q.principalHref()),
	}}
}

func (q *request) rootProps() resourceProps {
	return q.commonProps(Prefix, "<D:collection/>")
}

// principalProps are the properties that discovery reads (RFC 4791
// section 6.2.1, RFC 6352 section 7.1.1, RFC 5397).
func (q *request) principalProps() resourceProps {
	r := q.commonProps(q.principalHref(), "<D:collection/><D:principal/>")
	r.values[propPrincipalURL] = hrefXML(q.principalHref())
	r.values[propDisplayName] = escape(q.displayName)
	r.values[propCalendarHomeSet] = hrefXML(href(kindCalendar.homeSegment(), q.login, ""))
	r.values[propAddressbookHomeSet] = hrefXML(href(kindAddressBook.homeSegment(), q.login, ""))
	return r
}

func (q *request) homeResources(children bool) ([]resourceProps, error) {
	home := q.commonProps(href(q.target.kind.homeSegment(), q.login, ""), "<D:collection/>")
	home.values[propOwner] = hrefXML(q.principalHref())
	home.values[propPrivileges] = privilegesXML
	// iOS profiles name the home as the principal URL, so the home
	// has the discovery properties of the principal as well.
	home.values[propCalendarHomeSet] = hrefXML(href(kindCalendar.homeSegment(), q.login, ""))
	home.values[propAddressbookHomeSet] = hrefXML(href(kindAddressBook.homeSegment(), q.login, ""))
	q.addLockProps(home)
	resources := []resourceProps{home}
	if !children {
		return resources, nil
	}
	cs, err := q.h.store.collections(q.ctx(), q.login, q.target.kind)
	if err != nil {
		return nil, err
	}
	for _, c := range cs {
		resources = append(resources, q.collectionProps(c))
	}
	return resources, nil
}

// privilegesXML grants the user everything on their own and the
// household's collections (RFC 3744 section 5.4).
const privilegesXML = "<D:privilege><D:read/></D:privilege><D:privilege><D:write/></D:privilege>" +
	"<D:privilege><D:write-properties/></D:privilege><D:privilege><D:write-content/></D:privilege>" +
	"<D:privilege><D:bind/></D:privilege><D:privilege><D:unbind/></D:privilege>"

func (q *request) collectionHref(c *collection) string {
	return href(c.kind.homeSegment(), q.login, c.urlName(), "")
}

func (q *request) collectionProps(c *collection) resourceProps {
	var r resourceProps
	if c.kind == kindCalendar {
		r = q.commonProps(q.collectionHref(c), "<D:collection/><C:calendar/>")
		r.values[propSupportedComps] = componentSetXML(c.components)
		r.values[propSupportedCalData] = `<C:calendar-data content-type="text/calendar" version="2.0"/>`
		r.values[propCalMaxSize] = strconv.FormatInt(q.h.maxSize, 10)
		r.values[propSupportedReports] = reportSetXML("C:calendar-query", "C:calendar-multiget", "D:sync-collection")
	} else {
		r = q.commonProps(q.collectionHref(c), "<D:collection/><CR:addressbook/>")
		r.values[propSupportedAddrData] = `<CR:address-data-type content-type="text/vcard" version="3.0"/>` +
			`<CR:address-data-type content-type="text/vcard" version="4.0"/>`
		r.values[propAddrMaxSize] = strconv.FormatInt(q.h.maxSize, 10)
		r.values[propSupportedReports] = reportSetXML("CR:addressbook-query", "CR:addressbook-multiget", "D:sync-collection")
	}
	for n, v := range c.props {
		r.values[n] = v
	}
	r.values[propOwner] = hrefXML(q.principalHref())
	r.values[propPrivileges] = privilegesXML
	r.values[propSyncToken] = escape(c.syncToken())
	r.values[propGetCTag] = escape(c.syncToken())
	q.addLockProps(r)
	return r
}

func componentSetXML(comps []string) string {
	var b strings.Builder
	for _, c := range comps {
		b.WriteString(`<C:comp name="` + escape(c) + `"/>`)
	}
	return b.String()
}

// reportSetXML lists reports for supported-report-set (RFC 3253 section
// 3.1.5).
func reportSetXML(reports ...string) string {
	var b strings.Builder
	for _, r := range reports {
		b.WriteString("<D:supported-report><D:report><" + r + "/></D:report></D:supported-report>")
	}
	return b.String()
}

func (q *request) collectionResources(children bool, req propRequest) ([]resourceProps, error) {
	c, err := q.targetCollection()
	if err != nil {
		return nil, err
	}
	resources := []resourceProps{q.collectionProps(c)}
	if !children {
		return resources, nil
	}
	objs, err := q.h.store.objects(q.ctx(), c.id, wantsData(req), nil)
	if err != nil {
		return nil, err
	}
	for _, o := range objs {
		resources = append(resources, q.objectProps(c, o))
	}
	return resources, nil
}

// wantsData reports whether a request names calendar-data or
// address-data, which need the objects' bytes.
func wantsData(req propRequest) bool {
	return req.wants(propCalendarData) || req.wants(propAddressData)
}

func (q *request) objectResource(req propRequest) ([]resourceProps, error) {
	c, err := q.targetCollection()
	if err != nil {
		return nil, err
	}
	o, err := q.h.store.object(q.ctx(), c.id, q.target.object)
	if err == errNotFound {
		return nil, httpErrorf(http.StatusNotFound, "no object named %q", q.target.object)
	}
	if err != nil {
		return nil, err
	}
	return []resourceProps{q.objectProps(c, o)}, nil
}

func (q *request) objectHref(c *collection, name string) string {
	return href(c.kind.homeSegment(), q.login, c.urlName(), name)
}

func (q *request) objectProps(c *collection, o *object) resourceProps {
	r := q.commonProps(q.objectHref(c, o.name), "")
	r.values[propGetETag] = escape(`"` + o.etag + `"`)
	r.values[propGetContentType] = contentType(c.kind)
	r.values[propGetContentLength] = strconv.FormatInt(o.size, 10)
	r.values[propGetLastModified] = o.modified.UTC().Format(http.TimeFormat)
	q.addLockProps(r)
	if o.data != nil {
		if c.kind == kindCalendar {
			r.values[propCalendarData] = escape(string(o.data))
		} else {
			r.values[propAddressData] = escape(string(o.data))
		}
	}
	return r
}
