package webui

import (
	"encoding/base64"
	"github.com/heimwolke/heimwolke/packages/accounts"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/net/idna"
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
	if accounts.IsReservedName(name) {
		return "validate.name.reserved"
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

// The checks below are for the wizard's later steps. Each returns the
// catalog key of the rule that a value breaks, or "", so that the form can
// name the fix. Package control checks the assembled settings again.

// specialUseDomains are names that no household can own, so that no
// certificate authority issues certificates for them. RFC 6761 reserves
// test, example, invalid, localhost and the example second-level names.
// RFC 6762 reserves local, RFC 7686 onion and RFC 8375 home.arpa, and ICANN
// reserved internal for private networks.
var specialUseDomains = []string{
	"local", "localhost", "test", "example", "invalid", "onion", "home.arpa", "internal",
	"example.com", "example.net", "example.org",
}

// normalizeDomain converts a typed domain name to its ASCII form: the
// UTS 46 lookup mapping lowers the case and turns an internationalized
// name into A-labels (RFC 5891), and one trailing dot is dropped. It
// returns the problem's catalog key when the name is not a public domain
// of at least two labels.
func normalizeDomain(typed string) (ascii, problem string) {
	name := strings.TrimSuffix(strings.TrimSpace(typed), ".")
	if name == "" {
		return "", "validate.domain.empty"
	}
	ascii, err := idna.Lookup.ToASCII(name)
	if err != nil {
		return "", "validate.domain.invalid"
	}
	if problem := hostNameProblem(ascii); problem != "" {
		return "", problem
	}

	labels := strings.Split(ascii, ".")
	switch {
	case len(labels) < 2:
		return "", "validate.domain.one_label"
	case strings.Trim(labels[len(labels)-1], "0123456789") == "":
		return "", "validate.domain.address"
	}
	for _, special := range specialUseDomains {
		if ascii == special || strings.HasSuffix(ascii, "."+special) {
			return "", "validate.domain.special"
		}
	}
	return ascii, ""
}

// hostNameProblem checks a host name in ASCII: labels of 1 to 63 letters,
// digits and inner hyphens, at most 253 characters in all (RFC 1123
// section 2.1).
func hostNameProblem(ascii string) string {
	if len(ascii) > 253 {
		return "validate.domain.too_long"
	}
	for _, label := range strings.Split(ascii, ".") {
		if len(label) > 63 {
			return "validate.domain.label_long"
		}
		if label == "" || label[0] == '-' || label[len(label)-1] == '-' {
			return "validate.domain.invalid"
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !isAlnum(c) && !('A' <= c && c <= 'Z') && c != '-' {
				return "validate.domain.invalid"
			}
		}
	}
	return ""
}

// longLabel returns the first label of a typed domain whose ASCII form is
// longer than 63 characters, the limit of RFC 1035 section 2.3.4, as typed
// and with the length of its ASCII form. It returns "" and 0 when no label
// is too long.
func longLabel(typed string) (label string, length int) {
	for _, l := range strings.Split(strings.TrimSuffix(strings.TrimSpace(typed), "."), ".") {
		ascii, err := idna.Lookup.ToASCII(l)
		if err != nil {
			ascii = l
		}
		if len(ascii) > 63 {
			return l, len(ascii)
		}
	}
	return "", 0
}

// normalizeHost converts a typed server name or IP address to the form in
// the settings: an IP address as parsed, a name in lowercase ASCII. Unlike
// a domain, a name of one label is allowed.
func normalizeHost(typed string) (host, problem string) {
	typed = strings.TrimSpace(typed)
	if typed == "" {
		return "", "validate.host.empty"
	}
	if addr, err := netip.ParseAddr(strings.Trim(typed, "[]")); err == nil {
		return addr.String(), ""
	}
	ascii, err := idna.Lookup.ToASCII(strings.TrimSuffix(typed, "."))
	if err != nil || hostNameProblem(ascii) != "" {
		return "", "validate.host.invalid"
	}
	return ascii, ""
}

// parsePort reads a TCP port number.
func parsePort(typed string) (port int, problem string) {
	typed = strings.TrimSpace(typed)
	if typed == "" {
		return 0, "validate.port.empty"
	}
	port, err := strconv.Atoi(typed)
	if err != nil || port < 1 || port > 65535 {
		return 0, "validate.port.invalid"
	}
	return port, ""
}

// normalizeHostPort converts "host" or "host:port" to host:port, with
// defaultPort when the port is left out. An IPv6 address with a port goes
// in brackets, as in URLs. For a problem, it also returns the host or the
// port as typed, whichever is at fault.
func normalizeHostPort(typed string, defaultPort int) (hostPort, problem, fault string) {
	typed = strings.TrimSpace(typed)
	hostText, portText := typed, strconv.Itoa(defaultPort)
	if h, p, err := net.SplitHostPort(typed); err == nil {
		hostText, portText = h, p
	}
	host, problem := normalizeHost(hostText)
	if problem != "" {
		return "", problem, hostText
	}
	port, problem := parsePort(portText)
	if problem != "" {
		return "", problem, portText
	}
	return net.JoinHostPort(host, strconv.Itoa(port)), "", ""
}

// maxSecretBytes caps API tokens, keys and passwords for other services,
// as package control does.
const maxSecretBytes = 4096

// tokenProblem checks an API token, which never contains white space.
func tokenProblem(token string) string {
	switch {
	case len(token) > maxSecretBytes:
		return "validate.secret.too_long"
	case strings.IndexFunc(token, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0:
		return "validate.token.chars"
	}
	return ""
}

// secretPasswordProblem checks a password for another service, which may
// contain spaces but no control characters.
func secretPasswordProblem(password string) string {
	switch {
	case len(password) > maxSecretBytes:
		return "validate.secret.too_long"
	case !utf8.ValidString(password) || strings.IndexFunc(password, unicode.IsControl) >= 0:
		return "validate.secret.control"
	}
	return ""
}

// cleanTSIGSecret returns a TSIG key in standard base64 with padding. It
// also accepts the key line as tsig-keygen and BIND's key files print it:
// secret "c2VjcmV0...";
func cleanTSIGSecret(typed string) (secret, problem string) {
	secret = strings.TrimSpace(typed)
	secret = strings.TrimSpace(strings.TrimSuffix(secret, ";"))
	if keyword, rest, ok := strings.Cut(secret, " "); ok && strings.EqualFold(keyword, "secret") {
		secret = strings.TrimSpace(rest)
	}
	secret = strings.Trim(secret, `"`)
	secret = strings.Join(strings.Fields(secret), "")
	if len(secret) > maxSecretBytes {
		return "", "validate.secret.too_long"
	}
	key, err := base64.StdEncoding.Strict().DecodeString(secret)
	if err != nil || len(key) == 0 {
		return "", "validate.tsig_secret.base64"
	}
	return secret, ""
}

// keyNameProblem checks a TSIG key name: labels of letters, digits,
// hyphens and underscores, with an optional trailing dot (RFC 8945 section
// 4.2 allows any domain name, and BIND's key names use underscores).
func keyNameProblem(name string) string {
	trimmed := strings.TrimSuffix(name, ".")
	if trimmed == "" {
		return "validate.key_name.empty"
	}
	if hostNameProblem(strings.ReplaceAll(trimmed, "_", "a")) != "" {
		return "validate.key_name.invalid"
	}
	return ""
}
