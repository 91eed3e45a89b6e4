package smtp

import (
	"bytes"
	"slices"
	"strings"
)

// headerFields splits the header of msg into its fields, each with its
// continuation lines and line ending, and returns the rest (the empty line
// and the body). A message without an empty line is all header.
func headerFields(msg []byte) (fields [][]byte, rest []byte) {
	for len(msg) > 0 {
		if msg[0] == '\r' || msg[0] == '\n' {
			return fields, msg
		}
		end := 0
		for {
			nl := bytes.IndexByte(msg[end:], '\n')
			if nl < 0 {
				end = len(msg)
				break
			}
			end += nl + 1
			if end >= len(msg) || (msg[end] != ' ' && msg[end] != '\t') {
				break
			}
		}
		fields = append(fields, msg[:end])
		msg = msg[end:]
	}
	return fields, nil
}

// fieldName returns the lowered name of a header field.
func fieldName(field []byte) string {
	i := bytes.IndexByte(field, ':')
	if i < 0 {
		return ""
	}
	return strings.ToLower(strings.TrimSpace(string(field[:i])))
}

// removeAuthResults deletes Authentication-Results fields that claim to be
// from authServID, because only this server may write them (RFC 8601
// section 5).
func removeAuthResults(msg []byte, authServID string) []byte {
	fields, rest := headerFields(msg)
	var out bytes.Buffer
	out.Grow(len(msg))
	for _, f := range fields {
		if fieldName(f) == "authentication-results" {
			value := strings.TrimSpace(string(f[bytes.IndexByte(f, ':')+1:]))
			id, _, _ := strings.Cut(value, ";")
			if strings.EqualFold(strings.TrimSpace(id), authServID) {
				continue
			}
		}
		out.Write(f)
	}
	out.Write(rest)
	return out.Bytes()
}

// hasField reports whether the header contains a field named name (lower
// case).
func hasField(fields [][]byte, name string) bool {
	for _, f := range fields {
		if fieldName(f) == name {
			return true
		}
	}
	return false
}

// fieldValues returns the unfolded values of the fields named name.
func fieldValues(fields [][]byte, name string) []string {
	var values []string
	for _, f := range fields {
		if fieldName(f) == name {
			v := string(f[bytes.IndexByte(f, ':')+1:])
			v = strings.NewReplacer("\r\n", "", "\n", "").Replace(v)
			values = append(values, strings.TrimSpace(v))
		}
	}
	return values
}

// removeFields deletes the header fields whose lowered names are in
// names, with their continuation lines.
func removeFields(header []byte, names ...string) []byte {
	fields, rest := headerFields(header)
	var out bytes.Buffer
	out.Grow(len(header))
	for _, f := range fields {
		if !slices.Contains(names, fieldName(f)) {
			out.Write(f)
		}
	}
	out.Write(rest)
	return out.Bytes()
}

// returnPathField returns the Return-Path field that final delivery puts
// at the top of a message (RFC 5321 section 4.4), with the envelope
// sender from, or "<>" for the null sender of bounces.
func returnPathField(from string) string {
	return "Return-Path: <" + from + ">\r\n"
}
