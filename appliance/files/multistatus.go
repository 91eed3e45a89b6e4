package files

import (
	"bufio"
	"bytes"
	"cmp"
	"encoding/xml"
	"mime"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/net/webdav"
	"golang.org/x/text/unicode/norm"

	"github.com/heimwolke/heimwolke/packages/davlock"
)

// multistatusWriter streams the multistatus response of the fast PROPFIND
// path (RFC 4918 section 14.16) to a bufio.Writer. It escapes names by
// hand and reuses its buffers, so that writing a resource allocates
// nothing unless the resource has dead properties or locks are requested.
type multistatusWriter struct {
	bw     *bufio.Writer
	fsys   *rootFS
	prefix string     // URL path of the folder tree, without the trailing slash
	names  []xml.Name // the requested properties, nil for allprop
	locks  bool       // names contains lockdiscovery

	href    []byte // escaped URL path of the folder whose children are written
	found   []byte // the properties with status 200 of one resource
	missing []byte // the requested properties that the resource lacks
	value   []byte // scratch space for one property value or name
}

func newMultistatusWriter(bw *bufio.Writer, fsys *rootFS, prefix string, names []xml.Name) *multistatusWriter {
	return &multistatusWriter{
		bw:     bw,
		fsys:   fsys,
		prefix: prefix,
		names:  names,
		locks:  slices.Contains(names, lockDiscovery),
	}
}

// writeListing writes the whole multistatus element for l. It returns
// the error of reading l's folder, after which the element is incomplete.
func (w *multistatusWriter) writeListing(l *propfindListing) error {
	w.bw.WriteString(`<?xml version="1.0" encoding="UTF-8"?><D:multistatus xmlns:D="DAV:">`)

	selfName := "/" // the resource's path below the folder tree
	if l.rel != "." {
		selfName += l.rel
	}
	w.href = appendEscapedPath(w.href[:0], w.prefix+selfName)
	w.writeResponse(&l.self, "", l.selfDead, selfName)

	if l.folder {
		if !strings.HasSuffix(selfName, "/") {
			w.href = append(w.href, '/')
		}
		writeChild := func(e *propfindEntry) {
			var dead map[xml.Name]webdav.Property
			if len(l.childDead) > 0 {
				dead = l.childDead[norm.NFC.String(e.name)]
			}
			var childName string
			if w.locks {
				childName = path.Join(selfName, e.name)
			}
			w.writeResponse(e, e.name, dead, childName)
		}
		if l.children == nil {
			if err := w.fsys.streamEntries(l.rel, writeChild); err != nil {
				return err
			}
		}
		for i := range l.children {
			writeChild(&l.children[i])
		}
	}
	w.bw.WriteString(`</D:multistatus>`)
	return nil
}

// writeResponse writes the response element of e, whose URL path is w.href
// followed by name, with the requested properties or allprop's. davName is
// the resource's path below the folder tree, such as "/a/b". Only
// lockdiscovery needs it, and it is empty when no lockdiscovery is requested.
func (w *multistatusWriter) writeResponse(e *propfindEntry, name string, dead map[xml.Name]webdav.Property, davName string) {
	w.bw.WriteString(`<D:response><D:href>`)
	w.bw.Write(w.href)
	w.value = appendEscapedPath(w.value[:0], name)
	w.bw.Write(w.value)
	// Names on disk contain no slash, so only the folder tree's root
	// has one at the end already.
	if e.dir && (name != "" || !bytes.HasSuffix(w.href, []byte("/"))) {
		w.bw.WriteByte('/')
	}
	w.bw.WriteString(`</D:href>`)

	allprop := w.names == nil
	names := w.names
	if allprop {
		names = allpropNames
		if len(dead) > 0 {
			names = append(slices.Clone(allpropNames), sortedNames(dead)...)
		}
	}
	w.found, w.missing = w.found[:0], w.missing[:0]
	for _, n := range names {
		if p, ok := dead[n]; ok {
			w.found = appendProp(w.found, n, p.Lang, p.InnerXML)
			continue
		}
		var ok bool
		w.value, ok = w.appendLiveProp(w.value[:0], e, n, davName)
		switch {
		case ok:
			w.found = appendProp(w.found, n, "", w.value)
		case !allprop:
			w.missing = appendProp(w.missing, n, "", nil)
		}
	}
	w.writePropstat(w.found, "HTTP/1.1 200 OK")
	w.writePropstat(w.missing, "HTTP/1.1 404 Not Found")
	w.bw.WriteString(`</D:response>`)
}

func (w *multistatusWriter) writePropstat(props []byte, status string) {
	if len(props) == 0 {
		return
	}
	w.bw.WriteString(`<D:propstat><D:prop>`)
	w.bw.Write(props)
	w.bw.WriteString(`</D:prop><D:status>`)
	w.bw.WriteString(status)
	w.bw.WriteString(`</D:status></D:propstat>`)
}

// appendLiveProp appends the XML content of a live property of e, and
// returns false when e has no such property.
func (w *multistatusWriter) appendLiveProp(b []byte, e *propfindEntry, n xml.Name, davName string) ([]byte, bool) {
	switch n {
	case propResourceType:
		if e.dir {
			b = append(b, `<D:collection/>`...)
		}
		return b, true
	case propDisplayName:
		return appendEscapedText(b, e.name), true
	case propContentLength:
		return strconv.AppendInt(b, e.size, 10), !e.dir
	case propLastModified:
		return e.modTime.AppendFormat(b, http.TimeFormat), true
	case propContentType:
		if e.dir {
			return b, false
		}
		return appendEscapedText(b, contentType(e.name)), true
	case propETag:
		if e.dir {
			return b, false
		}
		// The quotes of the entity tag, escaped as xml.EscapeText does.
		b = append(b, "&#34;"...)
		b = appendETagDigits(b, e.modTime, e.size)
		return append(b, "&#34;"...), true
	case propSupportedLock:
		return append(b, davlock.SupportedLockXML...), true
	case lockDiscovery:
		for _, l := range w.fsys.locks.LocksFor(time.Now(), davName) {
			b = append(b, l.ActiveLockXML(w.fsys.prefix)...)
		}
		return b, true
	case quotaUsed, quotaAvailable:
		value, ok := w.fsys.quotaProp(n, e.dir)
		return append(b, value...), ok
	}
	return b, false
}

// contentType returns the media type of a file by its name's extension,
// as fileInfo.ContentType does.
func contentType(name string) string {
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	return "application/octet-stream"
}

// entityTag returns the entity tag of a file, with its quotes.
func entityTag(modTime time.Time, size int64) string {
	return `"` + string(appendETagDigits(nil, modTime, size)) + `"`
}

// appendETagDigits appends the entity tag of a file without its quotes, in
// the webdav package's form: the modification time in nanoseconds since
// 1970 and the size, both in hexadecimal.
func appendETagDigits(b []byte, modTime time.Time, size int64) []byte {
	b = strconv.AppendInt(b, modTime.UnixNano(), 16)
	return strconv.AppendInt(b, size, 16)
}

func (fsys *rootFS) quotaProp(n xml.Name, dir bool) (string, bool) {
	if !dir {
		return "", false
	}
	used, err := fsys.usage.current(fsys.root)
	if err != nil {
		return "", false
	}
	if n == quotaUsed {
		return strconv.FormatInt(used, 10), true
	}
	avail, err := fsys.available(used)
	if err != nil {
		return "", false
	}
	return strconv.FormatInt(avail, 10), true
}

// sortedNames returns the names of props in a fixed order.
func sortedNames(props map[xml.Name]webdav.Property) []xml.Name {
	names := make([]xml.Name, 0, len(props))
	for n := range props {
		names = append(names, n)
	}
	slices.SortFunc(names, func(a, b xml.Name) int {
		return cmp.Or(strings.Compare(a.Space, b.Space), strings.Compare(a.Local, b.Local))
	})
	return names
}

// appendProp appends a property element with the D: prefix for DAV:, the
// prefix X: for other namespaces, and an empty default namespace for
// properties without one. Some versions of Windows' Mini-Redirector
// (Windows 7) ignore elements in a default namespace, as a comment in
// golang.org/x/net/webdav's xml.go notes. value is XML content and is
// written as it is.
func appendProp(b []byte, n xml.Name, lang string, value []byte) []byte {
	b = append(b, '<')
	b = appendPropName(b, n)
	switch n.Space {
	case "DAV:":
	case "":
		b = append(b, ` xmlns=""`...)
	default:
		b = append(b, ` xmlns:X="`...)
		b = appendEscapedText(b, n.Space)
		b = append(b, '"')
	}
	if lang != "" {
		b = append(b, ` xml:lang="`...)
		b = appendEscapedText(b, lang)
		b = append(b, '"')
	}
	if len(value) == 0 {
		return append(b, "/>"...)
	}
	b = append(b, '>')
	b = append(b, value...)
	b = append(b, "</"...)
	b = appendPropName(b, n)
	return append(b, '>')
}

// appendPropName appends the prefixed name of a property element.
func appendPropName(b []byte, n xml.Name) []byte {
	switch n.Space {
	case "DAV:":
		b = append(b, "D:"...)
	case "":
	default:
		b = append(b, "X:"...)
	}
	return append(b, n.Local...)
}

// appendEscapedText appends s escaped as encoding/xml's EscapeText does,
// byte for byte: the five markup characters and tab, newline and carriage
// return as character references, and invalid UTF-8 or characters outside
// XML's Char production as U+FFFD.
func appendEscapedText(b []byte, s string) []byte {
	last := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c >= 0x20 && c < utf8.RuneSelf && c != '"' && c != '\'' && c != '&' && c != '<' && c != '>' {
			i++
			continue
		}
		r, width := utf8.DecodeRuneInString(s[i:])
		var esc string
		switch r {
		case '"':
			esc = "&#34;"
		case '\'':
			esc = "&#39;"
		case '&':
			esc = "&amp;"
		case '<':
			esc = "&lt;"
		case '>':
			esc = "&gt;"
		case '\t':
			esc = "&#x9;"
		case '\n':
			esc = "&#xA;"
		case '\r':
			esc = "&#xD;"
		default:
			if isXMLChar(r) && (r != utf8.RuneError || width > 1) {
				i += width
				continue
			}
			esc = "\uFFFD"
		}
		b = append(b, s[last:i]...)
		b = append(b, esc...)
		i += width
		last = i
	}
	return append(b, s[last:]...)
}

// isXMLChar reports whether r is in the Char production of XML 1.0
// section 2.2.
func isXMLChar(r rune) bool {
	return r == 0x09 || r == 0x0A || r == 0x0D ||
		r >= 0x20 && r <= 0xD7FF ||
		r >= 0xE000 && r <= 0xFFFD ||
		r >= 0x10000 && r <= 0x10FFFF
}

// appendEscapedPath appends the URL path p percent-encoded as
// url.URL.EscapedPath does and then escaped for XML text as
// html.EscapeString does, so for a URL path only "&" changes.
func appendEscapedPath(b []byte, p string) []byte {
	const upperHex = "0123456789ABCDEF"
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9':
			b = append(b, c)
		case c == '&':
			b = append(b, "&amp;"...)
		case strings.IndexByte("-._~$+,/:;=@", c) >= 0:
			b = append(b, c)
		default:
			b = append(b, '%', upperHex[c>>4], upperHex[c&15])
		}
	}
	return b
}
