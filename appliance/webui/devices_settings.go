package webui

import (
	"html/template"
	"net/url"
	"strings"

	"github.com/heimwolke/heimwolke/packages/accounts"
)

// Ports that the device pages give clients. Mail uses implicit TLS on both
// ports, as RFC 8314 section 3 recommends: IMAP on 993 and submission on
// 465. CalDAV, CardDAV and WebDAV run on HTTPS.
const (
	imapsPort       = 993
	submissionsPort = 465
	httpsPort       = 443
)

// deviceSettings are the values that a device page lists for the user to
// enter, with the new app password.
type deviceSettings struct {
	// MailHost is the IMAP and submission server, and DAVHost the
	// server of the calendars, address books and files.
	MailHost string
	DAVHost  string

	User     string
	Password string

	// Email is the mail address, and JID the XMPP address (RFC 7622):
	// both are the login name at the household's domain.
	Email string
	JID   string

	IMAPPort int
	SMTPPort int

	CalendarURL    string
	AddressBookURL string
	FilesURL       string

	// DAVx5URL and XMPPURL are links that open the apps, with QR codes of
	// the same links; set for Android only.
	DAVx5URL template.URL
	DAVx5QR  *qrImage
	XMPPURL  template.URL
	XMPPQR   *qrImage
}

// newDeviceSettings returns the settings of user with the app password
// secret for the servers in names, with the Android links and QR codes when
// android is set.
func newDeviceSettings(names serviceNames, user *accounts.User, secret string, android bool) (*deviceSettings, error) {
	host := names.DAVHost
	s := &deviceSettings{
		MailHost:       names.MailHost,
		DAVHost:        host,
		User:           user.Name,
		Password:       secret,
		Email:          user.Name + "@" + names.MailDomain,
		JID:            user.Name + "@" + names.MailDomain,
		IMAPPort:       imapsPort,
		SMTPPort:       submissionsPort,
		CalendarURL:    davURL(host, "calendars", user.Name),
		AddressBookURL: davURL(host, "addressbooks", user.Name),
		FilesURL:       davURL(host, "files", user.Name),
	}
	if !android {
		return s, nil
	}

	var err error
	s.DAVx5URL = template.URL(davx5URL(host, user.Name, secret))
	if s.DAVx5QR, err = newQRImage(string(s.DAVx5URL)); err != nil {
		return nil, err
	}
	s.XMPPURL = template.URL(xmppURI(s.JID))
	if s.XMPPQR, err = newQRImage(string(s.XMPPURL)); err != nil {
		return nil, err
	}
	return s, nil
}

// BreakAfterSlashes returns the URL text, HTML-escaped, with a line break
// opportunity (<wbr>) after each slash of its path, so that a long URL wraps
// on a phone screen instead of widening the page.
func (s *deviceSettings) BreakAfterSlashes(text string) template.HTML {
	escaped := template.HTMLEscapeString(text)
	scheme, rest, ok := strings.Cut(escaped, "://")
	if !ok {
		return template.HTML(strings.ReplaceAll(escaped, "/", "/<wbr>"))
	}
	return template.HTML(scheme + "://" + strings.ReplaceAll(rest, "/", "/<wbr>"))
}

// davURL returns the HTTPS URL of a user's DAV collection: collection is
// "calendars", "addressbooks" or "files".
func davURL(host, collection, user string) string {
	u := url.URL{Scheme: "https", Host: host, Path: "/dav/" + collection + "/" + user + "/"}
	return u.String()
}

// davx5URL returns the link that opens DAVx⁵'s login with the URL, the
// user name and the password filled in. DAVx⁵ rewrites the scheme davx5://
// to https://, and takes the credentials from the user info; its manual
// documents this form for QR codes (chapter "Integration / API").
//
// The URL points at the calendar home. DAVx⁵ finds the address books from
// there through the principal that the DAV server names
// (current-user-principal, RFC 5397).
func davx5URL(host, user, secret string) string {
	u := url.URL{
		Scheme: "davx5",
		User:   url.UserPassword(user, secret),
		Host:   host,
		Path:   "/dav/calendars/" + user + "/",
	}
	return u.String()
}

// xmppURI returns the XMPP URI of jid (RFC 5122). Login names
// and host names contain no character that the URI must escape.
func xmppURI(jid string) string {
	return "xmpp:" + jid
}
