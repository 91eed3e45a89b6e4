package webui

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/heimwolke/heimwolke/packages/accounts"
)

// appleProfile returns a configuration profile (.mobileconfig) that sets up
// mail, CalDAV and CardDAV with the app password in settings. The profile
// is an unsigned XML property list with one payload per account, as Apple's
// Device Management reference describes the payload types
// com.apple.mail.managed, com.apple.caldav.account and
// com.apple.carddav.account. Every call makes new PayloadUUIDs. The
// PayloadIdentifier stays the same per user and host, so that installing a
// newer profile on a device replaces the older one.
func (h *Handler) appleProfile(lang string, s *deviceSettings, user *accounts.User) ([]byte, error) {
	id := profileIdentifier(s.DAVHost, s.User)
	mail := plistDict{
		{"PayloadType", "com.apple.mail.managed"},
		{"PayloadVersion", 1},
		{"PayloadIdentifier", id + ".mail"},
		{"PayloadUUID", uuid.NewString()},
		{"PayloadDisplayName", h.t(lang, "devices.apple.profile.mail")},
		{"EmailAccountDescription", "Heimwolke"},
		{"EmailAccountName", user.DisplayName},
		{"EmailAccountType", "EmailTypeIMAP"},
		{"EmailAddress", s.Email},
		{"IncomingMailServerHostName", s.MailHost},
		{"IncomingMailServerPortNumber", s.IMAPPort},
		{"IncomingMailServerUseSSL", true},
		{"IncomingMailServerAuthentication", "EmailAuthPassword"},
		{"IncomingMailServerUsername", s.User},
		{"IncomingPassword", s.Password},
		{"OutgoingMailServerHostName", s.MailHost},
		{"OutgoingMailServerPortNumber", s.SMTPPort},
		{"OutgoingMailServerUseSSL", true},
		{"OutgoingMailServerAuthentication", "EmailAuthPassword"},
		{"OutgoingMailServerUsername", s.User},
		{"OutgoingPassword", s.Password},
	}
	caldav := plistDict{
		{"PayloadType", "com.apple.caldav.account"},
		{"PayloadVersion", 1},
		{"PayloadIdentifier", id + ".caldav"},
		{"PayloadUUID", uuid.NewString()},
		{"PayloadDisplayName", h.t(lang, "devices.apple.profile.calendar")},
		{"CalDAVAccountDescription", "Heimwolke"},
		{"CalDAVHostName", s.DAVHost},
		{"CalDAVPort", httpsPort},
		{"CalDAVUseSSL", true},
		{"CalDAVPrincipalURL", s.CalendarURL},
		{"CalDAVUsername", s.User},
		{"CalDAVPassword", s.Password},
	}
	carddav := plistDict{
		{"PayloadType", "com.apple.carddav.account"},
		{"PayloadVersion", 1},
		{"PayloadIdentifier", id + ".carddav"},
		{"PayloadUUID", uuid.NewString()},
		{"PayloadDisplayName", h.t(lang, "devices.apple.profile.contacts")},
		{"CardDAVAccountDescription", "Heimwolke"},
		{"CardDAVHostName", s.DAVHost},
		{"CardDAVPort", httpsPort},
		{"CardDAVUseSSL", true},
		{"CardDAVPrincipalURL", s.AddressBookURL},
		{"CardDAVUsername", s.User},
		{"CardDAVPassword", s.Password},
	}
	profile := plistDict{
		{"PayloadType", "Configuration"},
		{"PayloadVersion", 1},
		{"PayloadIdentifier", id},
		{"PayloadUUID", uuid.NewString()},
		{"PayloadDisplayName", h.t(lang, "devices.apple.profile.name", "host", s.DAVHost)},
		{"PayloadDescription", h.t(lang, "devices.apple.profile.description", "email", s.Email)},
		{"PayloadOrganization", "Heimwolke"},
		{"PayloadRemovalDisallowed", false},
		{"PayloadContent", []plistDict{mail, caldav, carddav}},
	}

	var buf bytes.Buffer
	buf.WriteString(xml.Header)
	buf.WriteString(`<!DOCTYPE plist PUBLIC "-//Apple//DTD PLIST 1.0//EN" "http://www.apple.com/DTDs/PropertyList-1.0.dtd">` + "\n")
	buf.WriteString(`<plist version="1.0">` + "\n")
	if err := writePlistValue(&buf, profile, 0); err != nil {
		return nil, err
	}
	buf.WriteString("</plist>\n")
	return buf.Bytes(), nil
}

// profileIdentifier returns the reverse-DNS PayloadIdentifier of the
// profile for user on host, such as "de.familie-mueller.heimwolke.anna".
func profileIdentifier(host, user string) string {
	labels := strings.Split(host, ".")
	slices.Reverse(labels)
	return strings.Join(labels, ".") + ".heimwolke." + user
}

// plistDict is a property list dictionary whose keys keep their order.
type plistDict []plistEntry

type plistEntry struct {
	key   string
	value any
}

// writePlistValue writes v as a property list element, indented by depth
// tabs. It accepts string, int, bool, plistDict and []plistDict.
func writePlistValue(buf *bytes.Buffer, v any, depth int) error {
	indent := strings.Repeat("\t", depth)
	switch v := v.(type) {
	case string:
		buf.WriteString(indent + "<string>")
		if err := xml.EscapeText(buf, []byte(v)); err != nil {
			return err
		}
		buf.WriteString("</string>\n")
	case int:
		buf.WriteString(indent + "<integer>" + strconv.Itoa(v) + "</integer>\n")
	case bool:
		buf.WriteString(indent + "<" + strconv.FormatBool(v) + "/>\n")
	case plistDict:
		buf.WriteString(indent + "<dict>\n")
		for _, e := range v {
			buf.WriteString(indent + "\t<key>")
			if err := xml.EscapeText(buf, []byte(e.key)); err != nil {
				return err
			}
			buf.WriteString("</key>\n")
			if err := writePlistValue(buf, e.value, depth+1); err != nil {
				return err
			}
		}
		buf.WriteString(indent + "</dict>\n")
	case []plistDict:
		buf.WriteString(indent + "<array>\n")
		for _, d := range v {
			if err := writePlistValue(buf, d, depth+1); err != nil {
				return err
			}
		}
		buf.WriteString(indent + "</array>\n")
	default:
		return fmt.Errorf("writing property list: unsupported value type %T", v)
	}
	return nil
}
