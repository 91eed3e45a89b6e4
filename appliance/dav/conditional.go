package dav

import (
	"net/http"
	"strings"
)

func preconditionsOf(r *http.Request) preconditions {
	return preconditions{ifMatch: r.Header.Get("If-Match"), ifNoneMatch: r.Header.Get("If-None-Match")}
}

// allow evaluates If-Match and If-None-Match against the stored ETag
// (empty when the resource does not exist), as RFC 9110 section 13.2.2
// orders them: If-Match uses the strong comparison, If-None-Match the weak
// one.
func (p preconditions) allow(current string) bool {
	if p.ifMatch != "" {
		if current == "" {
			return false
		}
		if !matchesETag(p.ifMatch, current, false) {
			return false
		}
	}
	if p.ifNoneMatch != "" && current != "" && matchesETag(p.ifNoneMatch, current, true) {
		return false
	}
	return true
}

// matchesETag reports whether the header value, "*" or a list of entity
// tags (RFC 9110 section 8.8.3), matches etag. A weak tag never matches in
// the strong comparison.
func matchesETag(header, etag string, weak bool) bool {
	if strings.TrimSpace(header) == "*" {
		return true
	}
	for _, tag := range strings.Split(header, ",") {
		tag = strings.TrimSpace(tag)
		if strings.HasPrefix(tag, "W/") {
			if !weak {
				continue
			}
			tag = tag[2:]
		}
		if tag == `"`+etag+`"` {
			return true
		}
	}
	return false
}
