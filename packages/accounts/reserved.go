package accounts

import "slices"

// reservedNames are the local parts that the box keeps for its own mail:
// the role mailboxes ABUSE and SECURITY of RFC 2142 section 4 and
// POSTMASTER, HOSTMASTER and WEBMASTER of section 5, and MAILER-DAEMON,
// the usual sender of bounces. RFC 5321 section 4.5.1 requires
// postmaster@, and the box's DMARC and TLS-RPT records send reports to
// it. The mail directory delivers these addresses to the owner, so a user
// with such a login name would not get mail to it.
var reservedNames = []string{"postmaster", "abuse", "hostmaster", "webmaster", "security", "mailer-daemon"}

// ReservedNames returns the login names that no new user may take, in
// lower case.
func ReservedNames() []string { return slices.Clone(reservedNames) }

// IsReservedName reports whether name, compared without regard to ASCII
// case, is one of ReservedNames.
func IsReservedName(name string) bool {
	return slices.Contains(reservedNames, asciiLower(name))
}

// validateNotReserved rejects a reserved login name for a new user. Users
// created before a name was reserved keep it and can still log in.
func validateNotReserved(name string) error {
	if IsReservedName(name) {
		return &FieldError{"name", "is reserved for the box's own mail (" + name + "@ goes to the owner), choose another"}
	}
	return nil
}
