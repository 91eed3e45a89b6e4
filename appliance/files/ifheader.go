package files

import (
	"errors"
	"strings"
)

// ifList is one list of the If header (RFC 4918 section 10.4): all its
// conditions must hold for the resource, which is the request's unless a
// resource tag names another.
type ifList struct {
	resource   string
	conditions []ifCondition
}

type ifCondition struct {
	not   bool
	token string // a state token (lock token) or ""
	etag  string // an entity tag with its quotes, or ""
}

var errInvalidIf = errors.New("invalid If header")

// parseIf parses an If header (RFC 4918 section 10.4.2).
func parseIf(s string) ([]ifList, error) {
	var lists []ifList
	resource := ""
	for {
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			break
		}
		switch s[0] {
		case '<':
			end := strings.IndexByte(s, '>')
			if end < 0 {
				return nil, errInvalidIf
			}
			resource, s = s[1:end], s[end+1:]
		case '(':
			list, rest, err := parseIfList(s[1:])
			if err != nil {
				return nil, err
			}
			list.resource = resource
			lists = append(lists, list)
			s = rest
		default:
			return nil, errInvalidIf
		}
	}
	if len(lists) == 0 {
		return nil, errInvalidIf
	}
	return lists, nil
}

// parseIfList parses the conditions after "(" up to ")".
func parseIfList(s string) (ifList, string, error) {
	var list ifList
	not := false
	for {
		s = strings.TrimLeft(s, " \t")
		switch {
		case s == "":
			return list, "", errInvalidIf
		case s[0] == ')':
			if len(list.conditions) == 0 || not {
				return list, "", errInvalidIf
			}
			return list, s[1:], nil
		case strings.HasPrefix(s, "Not") && !not:
			not, s = true, s[3:]
		case s[0] == '<' || s[0] == '[':
			closing := byte('>')
			if s[0] == '[' {
				closing = ']'
			}
			end := strings.IndexByte(s, closing)
			if end < 0 {
				return list, "", errInvalidIf
			}
			c := ifCondition{not: not}
			if closing == '>' {
				c.token = s[1:end]
			} else {
				c.etag = s[1:end]
			}
			list.conditions = append(list.conditions, c)
			not, s = false, s[end+1:]
		default:
			return list, "", errInvalidIf
		}
	}
}

// formatIf writes lists back as an If header.
func formatIf(lists []ifList) string {
	var b strings.Builder
	for _, l := range lists {
		if l.resource != "" {
			b.WriteString("<" + l.resource + "> ")
		}
		b.WriteString("(")
		for i, c := range l.conditions {
			if i > 0 {
				b.WriteString(" ")
			}
			if c.not {
				b.WriteString("Not ")
			}
			if c.etag != "" {
				b.WriteString("[" + c.etag + "]")
			} else {
				b.WriteString("<" + c.token + ">")
			}
		}
		b.WriteString(") ")
	}
	return strings.TrimSpace(b.String())
}

// resourceState is what an If condition is evaluated against.
type resourceState struct {
	etag   string // "" when the resource does not exist
	tokens []string
}

// holds evaluates one condition (RFC 4918 section 10.4.4 and 10.4.8).
func (c ifCondition) holds(st resourceState) bool {
	var match bool
	if c.etag != "" {
		match = st.etag != "" && strings.TrimPrefix(c.etag, "W/") == st.etag
	} else {
		for _, t := range st.tokens {
			if t == c.token {
				match = true
			}
		}
	}
	return match != c.not
}

// lockTokens returns the positive state tokens of the list.
func (l ifList) lockTokens() []ifCondition {
	var tokens []ifCondition
	for _, c := range l.conditions {
		if !c.not && c.token != "" {
			tokens = append(tokens, c)
		}
	}
	return tokens
}
