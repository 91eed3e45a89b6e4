package webui

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// The rules below repeat those of the accounts package, which checks them
// again on create, so that the form can name the rule that a value broke.
// The accounts package only exports the rule text in English.
const (
	nameMaxLen         = 64
	displayNameMaxLen  = 100 // characters
	passwordMinChars   = 10
	passwordMaxBytes   = 1024
	appPasswordNameMax = 100 // characters
)

// normalizeLoginName lowers ASCII letters and trims spaces, as the accounts
// package does before it checks a name.
func normalizeLoginName(name string) string {
	name = strings.TrimSpace(name)
	b := []byte(name)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// loginNameProblem returns the catalog key of the rule that the normalized
// name breaks, or "". The key's message takes {n}, the length.
func loginNameProblem(name string) string {
	switch {
	case name == "":
		return "validate.name.empty"
	case len(name) > nameMaxLen:
		return "validate.name.too_long"
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		alnum := 'a' <= c && c <= 'z' || '0' <= c && c <= '9'
		if !alnum && c != '.' && c != '-' && c != '_' {
			return "validate.name.chars"
		}
	}
	if !isAlnum(name[0]) || !isAlnum(name[len(name)-1]) {
		return "validate.name.edges"
	}
	if strings.Contains(name, "..") {
		return "validate.name.dots"
	}
	return ""
}

func isAlnum(c byte) bool { return 'a' <= c && c <= 'z' || '0' <= c && c <= '9' }

// normalizeDisplayName trims and composes a display name as the accounts
// package stores it. Empty stays empty here; the store then uses the
// login name.
func normalizeDisplayName(s string) string {
	return strings.TrimSpace(norm.NFC.String(s))
}

// displayNameProblem returns the catalog key of the rule that the
// normalized display name breaks, or "". The key's message takes {n}.
func displayNameProblem(s string) string {
	switch {
	case !utf8.ValidString(s) || strings.IndexFunc(s, isLineBreakOrControl) >= 0:
		return "validate.display_name.control"
	case utf8.RuneCountInString(s) > displayNameMaxLen:
		return "validate.display_name.too_long"
	}
	return ""
}

// appPasswordNameProblem is displayNameProblem for the name of an app
// password, which must not be empty.
func appPasswordNameProblem(s string) string {
	switch {
	case s == "":
		return "validate.app_name.empty"
	case !utf8.ValidString(s) || strings.IndexFunc(s, isLineBreakOrControl) >= 0:
		return "validate.app_name.control"
	case utf8.RuneCountInString(s) > appPasswordNameMax:
		return "validate.app_name.too_long"
	}
	return ""
}

func isLineBreakOrControl(r rune) bool {
	return unicode.IsControl(r) || r == '\u2028' || r == '\u2029'
}

// passwordProblem returns the catalog key of the rule that a new password
// for the login name breaks, or "". It counts characters after the
// normalization that the accounts package applies (RFC 8265 section 4.2).
// The key's message takes {n}, the number of characters.
func passwordProblem(password, loginName string) string {
	password = normalizePassword(password)
	switch {
	case password == "":
		return "validate.password.empty"
	case !utf8.ValidString(password) || strings.IndexFunc(password, unicode.IsControl) >= 0:
		return "validate.password.control"
	case utf8.RuneCountInString(password) < passwordMinChars:
		return "validate.password.too_short"
	case len(password) > passwordMaxBytes:
		return "validate.password.too_long"
	case loginName != "" && strings.EqualFold(password, loginName):
		return "validate.password.is_name"
	}
	return ""
}

// normalizePassword maps non-ASCII spaces to U+0020 and composes to NFC, as
// the OpaqueString profile does (RFC 8265 section 4.2).
func normalizePassword(password string) string {
	mapped := strings.Map(func(r rune) rune {
		if r > unicode.MaxASCII && unicode.Is(unicode.Zs, r) {
			return ' '
		}
		return r
	}, password)
	return norm.NFC.String(mapped)
}

// checkNewPassword checks the two password fields of a form and adds the
// problems to errs under field and field+"2". It reports whether password
// is valid and both fields match.
func (h *Handler) checkNewPassword(errs *formErrors, lang, field, password, repeated, loginName string) bool {
	if key := passwordProblem(password, loginName); key != "" {
		errs.add(field, h.t(lang, key, "n", utf8.RuneCountInString(normalizePassword(password))))
		return false
	}
	if password != repeated {
		errs.add(field+"2", h.t(lang, "validate.password.mismatch"))
		return false
	}
	return true
}
