package davlock

import (
	"errors"
	"strings"
)

// IfList is one list of the If header (RFC 4918 section 10.4): all its
// conditions must hold for the resource, which is the request's unless a
// resource tag names another.
type IfList struct {
	Resource   string
	Conditions []IfCondition
}

// IfCondition is one condition of an IfList.
type IfCondition struct {
	Not   bool
	Token string // a state token (lock token) or ""
	ETag  string // an entity tag with its quotes, or ""
}

// ErrInvalidIf is the error of ParseIf.
var ErrInvalidIf = errors.New("invalid If header")

// ParseIf parses an If header (RFC 4918 section 10.4.2).
func ParseIf(s string) ([]IfList, error) {
	var lists []IfList
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
				return nil, ErrInvalidIf
			}
			resource, s = s[1:end], s[end+1:]
		case '(':
			list, rest, err := parseIfList(s[1:])
			if err != nil {
				return nil, err
			}
			list.Resource = resource
			lists = append(lists, list)
			s = rest
		default:
			return nil, ErrInvalidIf
		}
	}
	if len(lists) == 0 {
		return nil, ErrInvalidIf
	}
	return lists, nil
}

// parseIfList parses the conditions after "(" up to ")".
func parseIfList(s string) (IfList, string, error) {
	var list IfList
	not := false
	for {
		s = strings.TrimLeft(s, " \t")
		switch {
		case s == "":
			return list, "", ErrInvalidIf
		case s[0] == ')':
			if len(list.Conditions) == 0 || not {
				return list, "", ErrInvalidIf
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
				return list, "", ErrInvalidIf
			}
			c := IfCondition{Not: not}
			if closing == '>' {
				c.Token = s[1:end]
			} else {
				c.ETag = s[1:end]
			}
			list.Conditions = append(list.Conditions, c)
			not, s = false, s[end+1:]
		default:
			return list, "", ErrInvalidIf
		}
	}
}

// FormatIf writes lists back as an If header.
func FormatIf(lists []IfList) string {
	var b strings.Builder
	for _, l := range lists {
		if l.Resource != "" {
			b.WriteString("<" + l.Resource + "> ")
		}
		b.WriteString("(")
		for i, c := range l.Conditions {
			if i > 0 {
				b.WriteString(" ")
			}
			if c.Not {
				b.WriteString("Not ")
			}
			if c.ETag != "" {
				b.WriteString("[" + c.ETag + "]")
			} else {
				b.WriteString("<" + c.Token + ">")
			}
		}
		b.WriteString(") ")
	}
	return strings.TrimSpace(b.String())
}

// ResourceState is the entity tag and the lock tokens of a resource,
// against which If conditions are evaluated.
type ResourceState struct {
	ETag   string // with its quotes, "" when the resource does not exist
	Tokens []string
}

// Holds evaluates one condition (RFC 4918 section 10.4.4 and 10.4.8).
func (c IfCondition) Holds(st ResourceState) bool {
	var match bool
	if c.ETag != "" {
		match = st.ETag != "" && strings.TrimPrefix(c.ETag, "W/") == st.ETag
	} else {
		for _, t := range st.Tokens {
			if t == c.Token {
				match = true
			}
		}
	}
	return match != c.Not
}

// AllHold reports whether every condition of l holds for st.
func (l IfList) AllHold(st ResourceState) bool {
	for _, c := range l.Conditions {
		if !c.Holds(st) {
			return false
		}
	}
	return true
}

// LockTokens returns the positive state tokens of the list.
func (l IfList) LockTokens() []IfCondition {
	var tokens []IfCondition
	for _, c := range l.Conditions {
		if !c.Not && c.Token != "" {
			tokens = append(tokens, c)
		}
	}
	return tokens
}
