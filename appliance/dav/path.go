package dav

import (
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"
)

// kind is the type of a collection: calendar or address book.
type kind int

const (
	kindCalendar kind = 1 + iota
	kindAddressBook
)

// homeSegment is the first path segment under Prefix of a kind's homes.
func (k kind) homeSegment() string {
	if k == kindAddressBook {
		return "addressbooks"
	}
	return "calendars"
}

func (k kind) String() string {
	if k == kindAddressBook {
		return "addressbook"
	}
	return "calendar"
}

// memberName names an object of the kind in messages.
func (k kind) memberName() string {
	if k == kindAddressBook {
		return "vCard"
	}
	return "calendar object"
}

type targetType int

const (
	targetRoot targetType = iota
	targetPrincipal
	targetHome
	targetCollection
	targetObject
)

// target is the resource that a request path names.
type target struct {
	typ        targetType
	kind       kind   // for targetHome, targetCollection and targetObject
	collection string // URL segment of the collection, unescaped
	object     string // URL segment of the object, unescaped
}

// parseTarget splits an escaped request path into its resource. Each
// segment is unescaped on its own, so "%2F" cannot add a level and ".."
// cannot leave the user's home. A path into another user's home gets 403.
func parseTarget(escapedPath, login string) (target, error) {
	rest, ok := strings.CutPrefix(escapedPath, strings.TrimSuffix(Prefix, "/"))
	if !ok || rest != "" && rest[0] != '/' {
		return target{}, httpErrorf(http.StatusNotFound, "no CalDAV or CardDAV resource at this path")
	}
	rest = strings.TrimPrefix(rest, "/")
	if rest == "" {
		return target{typ: targetRoot}, nil
	}

	segs, err := splitSegments(rest)
	if err != nil {
		return target{}, err
	}
	if len(segs) < 2 {
		return target{}, httpErrorf(http.StatusNotFound, "no CalDAV or CardDAV resource at this path")
	}
	if segs[1] != login {
		return target{}, httpErrorf(http.StatusForbidden, "this path belongs to another user")
	}

	var t target
	switch segs[0] {
	case "principals":
		if len(segs) != 2 {
			return target{}, httpErrorf(http.StatusNotFound, "no resource below a principal")
		}
		return target{typ: targetPrincipal}, nil
	case "calendars":
		t.kind = kindCalendar
	case "addressbooks":
		t.kind = kindAddressBook
	default:
		return target{}, httpErrorf(http.StatusNotFound, "no CalDAV or CardDAV resource at this path")
	}

	switch len(segs) {
	case 2:
		t.typ = targetHome
	case 3:
		t.typ, t.collection = targetCollection, segs[2]
	case 4:
		t.typ, t.collection, t.object = targetObject, segs[2], segs[3]
	default:
		return target{}, httpErrorf(http.StatusNotFound, "collections do not nest")
	}
	return t, nil
}

// splitSegments unescapes each segment of a path without its leading
// slash, dropping one trailing slash.
func splitSegments(rest string) ([]string, error) {
	rest = strings.TrimSuffix(rest, "/")
	var segs []string
	for _, raw := range strings.Split(rest, "/") {
		seg, err := url.PathUnescape(raw)
		if err != nil {
			return nil, httpErrorf(http.StatusBadRequest, "invalid percent-encoding in path segment %q", raw)
		}
		if err := checkSegment(seg); err != nil {
			return nil, err
		}
		segs = append(segs, seg)
	}
	return segs, nil
}

// checkSegment rejects empty, dot and oversized segments and those with a
// slash, backslash, control character or invalid UTF-8.
func checkSegment(seg string) error {
	if seg == "" || seg == "." || seg == ".." {
		return httpErrorf(http.StatusBadRequest, "invalid path segment %q: empty segments, \".\" and \"..\" are not allowed", seg)
	}
	if len(seg) > 255 || !utf8.ValidString(seg) {
		return httpErrorf(http.StatusBadRequest, "invalid path segment: longer than 255 bytes or not UTF-8")
	}
	for _, r := range seg {
		if r < 0x20 || r == 0x7f || r == '/' || r == '\\' {
			return httpErrorf(http.StatusBadRequest, "invalid path segment %q: contains a slash, backslash or control character", seg)
		}
	}
	return nil
}

// validCollectionName reports whether name may name a new collection:
// letters, digits and "-_.@+~", at most 128 bytes, not starting with a dot.
// The limit keeps names plain in URLs and logs, and UUIDs fit it.
func validCollectionName(name string) bool {
	if name == "" || len(name) > 128 || name[0] == '.' {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		ok := 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || strings.IndexByte("-_.@+~", c) >= 0
		if !ok {
			return false
		}
	}
	return true
}

// parseHref resolves an href from a request body (an absolute path or a
// full URL) into a target.
func parseHref(h, login string) (target, error) {
	u, err := url.Parse(strings.TrimSpace(h))
	if err != nil {
		return target{}, httpErrorf(http.StatusBadRequest, "invalid href %q", h)
	}
	return parseTarget(u.EscapedPath(), login)
}
