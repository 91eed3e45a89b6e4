package davlock

import (
	"encoding/xml"
	"fmt"
	"html"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// Lock timeouts (RFC 4918 section 10.7). Clients refresh before the
// timeout ends, and a request for Infinite gets MaxTimeout.
const (
	DefaultTimeout = 1 * time.Hour
	MaxTimeout     = 24 * time.Hour
)

// LockInfo is the body of a LOCK request (RFC 4918 section 14.11).
type LockInfo struct {
	XMLName   xml.Name  `xml:"DAV: lockinfo"`
	Exclusive *struct{} `xml:"DAV: lockscope>exclusive"`
	Shared    *struct{} `xml:"DAV: lockscope>shared"`
	Write     *struct{} `xml:"DAV: locktype>write"`
	Owner     struct {
		InnerXML string `xml:",innerxml"`
	} `xml:"DAV: owner"`
}

// ParseTimeout takes the first timeout that it understands from the
// Timeout header (RFC 4918 section 10.7), at most MaxTimeout, or returns
// DefaultTimeout.
func ParseTimeout(hdr string) time.Duration {
	for _, t := range strings.Split(hdr, ",") {
		t = strings.TrimSpace(t)
		if t == "Infinite" {
			return MaxTimeout
		}
		if s, ok := strings.CutPrefix(t, "Second-"); ok {
			if n, err := strconv.ParseInt(s, 10, 64); err == nil && n > 0 {
				return min(time.Duration(n)*time.Second, MaxTimeout)
			}
		}
	}
	return DefaultTimeout
}

// SupportedLockXML is the value of the supportedlock property with
// exclusive and shared write locks (RFC 4918 section 15.10), with the D:
// prefix for DAV:.
const SupportedLockXML = `<D:lockentry><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>` +
	`<D:lockentry><D:lockscope><D:shared/></D:lockscope><D:locktype><D:write/></D:locktype></D:lockentry>`

// ActiveLockXML returns the activelock element of l (RFC 4918 section
// 14.1) with the D: prefix for DAV:. The lockroot is prefix + l.Root.
func (l *Lock) ActiveLockXML(prefix string) string {
	scope, depth := "exclusive", "infinity"
	if l.Shared {
		scope = "shared"
	}
	if l.ZeroDepth {
		depth = "0"
	}
	href := (&url.URL{Path: prefix + l.Root}).EscapedPath()
	var b strings.Builder
	b.WriteString(`<D:activelock>`)
	b.WriteString(`<D:locktype><D:write/></D:locktype>`)
	b.WriteString(`<D:lockscope><D:` + scope + `/></D:lockscope>`)
	b.WriteString(`<D:depth>` + depth + `</D:depth>`)
	if l.OwnerXML != "" {
		b.WriteString(`<D:owner>` + l.OwnerXML + `</D:owner>`)
	}
	fmt.Fprintf(&b, `<D:timeout>Second-%d</D:timeout>`, int64(l.Duration/time.Second))
	b.WriteString(`<D:locktoken><D:href>` + html.EscapeString(l.Token) + `</D:href></D:locktoken>`)
	b.WriteString(`<D:lockroot><D:href>` + html.EscapeString(href) + `</D:href></D:lockroot>`)
	b.WriteString(`</D:activelock>`)
	return b.String()
}
