package aliases

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/heimwolke/heimwolke/appliance/mail/smtp"
	"github.com/heimwolke/heimwolke/packages/accounts"
)

// UserLister lists the box's users. A UserLookup that implements it lets
// the Directory find the owner for the role addresses (postmaster@,
// abuse@ and the others of accounts.ReservedNames); *accounts.Store does.
type UserLister interface {
	Users(ctx context.Context) ([]accounts.User, error)
}

// Directory is an smtp.Directory over the users of the box and the
// aliases and catch-alls of a Store. It reads the database on every call,
// so that changes take effect without a restart. It also adds aliases and
// sets catch-alls after checking them against its domains and users.
type Directory struct {
	*Store
	domains []string
	users   smtp.UserLookup
}

// Directory returns the directory of the box's mail domains (ASCII, such
// as "example.org") and users. Without a UserLister, the role addresses
// reach only whom an alias names.
func (s *Store) Directory(domains []string, users smtp.UserLookup) *Directory {
	lowered := make([]string, len(domains))
	for i, d := range domains {
		lowered[i] = strings.ToLower(strings.TrimSuffix(d, "."))
	}
	return &Directory{Store: s, domains: lowered, users: users}
}

// Domains returns the box's mail domains in lower case.
func (d *Directory) Domains() []string { return slices.Clone(d.domains) }

// Lookup implements smtp.Directory. A role address (postmaster@, abuse@,
// hostmaster@, webmaster@, security@, mailer-daemon@, see
// accounts.ReservedNames)
// goes to its alias or else to the owner, never to a user of that name.
// Any other address tries the user, then the alias, then both again
// without a "+tag" suffix of the local part (anna+shop@ is anna@), then
// the domain's catch-all.
func (d *Directory) Lookup(ctx context.Context, addr string) (string, error) {
	local, domain, ok := splitAddress(addr)
	if !ok || !slices.Contains(d.domains, domain) {
		return "", smtp.ErrNotLocal
	}

	login, err := d.lookupLocal(ctx, local, domain)
	if !errors.Is(err, smtp.ErrUnknownRecipient) {
		return login, err
	}
	if base, _, tagged := strings.Cut(local, "+"); tagged && base != "" {
		login, err = d.lookupLocal(ctx, base, domain)
		if !errors.Is(err, smtp.ErrUnknownRecipient) {
			return login, err
		}
	}

	login, err = d.catchAll(ctx, domain)
	if err != nil {
		return "", err
	}
	if login == "" {
		return "", smtp.ErrUnknownRecipient
	}
	return login, nil
}

// lookupLocal finds the login for local@domain: the owner for a role
// address without an alias, else the user or the alias.
func (d *Directory) lookupLocal(ctx context.Context, local, domain string) (string, error) {
	if accounts.IsReservedName(local) {
		return d.lookupRole(ctx, local+"@"+domain)
	}
	_, err := d.users.UserByName(ctx, local)
	if err == nil {
		return local, nil
	}
	if !errors.Is(err, accounts.ErrNotFound) {
		return "", fmt.Errorf("looking up user %q: %w", local, err)
	}
	return d.lookupAlias(ctx, local+"@"+domain)
}

// lookupRole returns the alias login of a role address, or the owner. A
// user who has the role's name, from before the name was reserved, is
// skipped, so that reports and complaints reach the owner.
func (d *Directory) lookupRole(ctx context.Context, address string) (string, error) {
	login, err := d.alias(ctx, address)
	if err != nil || login != "" {
		return login, err
	}
	owner, err := d.owner(ctx)
	if err != nil {
		return "", err
	}
	if owner == "" {
		return "", smtp.ErrUnknownRecipient
	}
	return owner, nil
}

// lookupAlias returns the login of the alias address, or
// smtp.ErrUnknownRecipient.
func (d *Directory) lookupAlias(ctx context.Context, address string) (string, error) {
	login, err := d.alias(ctx, address)
	if err != nil {
		return "", err
	}
	if login == "" {
		return "", smtp.ErrUnknownRecipient
	}
	return login, nil
}

// owner returns the login name of the box's owner, or "" when the users
// cannot be listed or there is no owner yet.
func (d *Directory) owner(ctx context.Context) (string, error) {
	lister, ok := d.users.(UserLister)
	if !ok {
		return "", nil
	}
	users, err := lister.Users(ctx)
	if err != nil {
		return "", fmt.Errorf("finding the owner for a role address: %w", err)
	}
	for _, u := range users {
		if u.Role == accounts.RoleOwner {
			return u.Name, nil
		}
	}
	return "", nil
}

// Owns implements smtp.Directory: login owns its own address in each box
// domain and its aliases, and the login that receives a role address
// owns that address.
// A catch-all makes its user the owner of no address.
func (d *Directory) Owns(ctx context.Context, login, addr string) (bool, error) {
	local, domain, ok := splitAddress(addr)
	if !ok || !slices.Contains(d.domains, domain) {
		return false, nil
	}
	login = strings.ToLower(login)
	if accounts.IsReservedName(local) {
		receiver, err := d.lookupRole(ctx, local+"@"+domain)
		if errors.Is(err, smtp.ErrUnknownRecipient) {
			return false, nil
		}
		return receiver == login, err
	}
	if local == login {
		return true, nil
	}
	aliasLogin, err := d.alias(ctx, local+"@"+domain)
	return aliasLogin != "" && aliasLogin == login, err
}

// Add makes address an alias of login. The address must be in one of the
// box's domains, and neither a user nor another alias may take it. An
// alias for a role address, such as abuse@, sends its mail to login
// instead of the owner.
func (d *Directory) Add(ctx context.Context, address, login string) error {
	local, domain, err := d.checkAddress(address)
	if err != nil {
		return err
	}
	address = local + "@" + domain
	if login, err = d.checkLogin(ctx, login); err != nil {
		return fmt.Errorf("adding alias %q: %w", address, err)
	}

	if accounts.IsReservedName(local) {
		return d.insertAlias(ctx, Alias{Address: address, Login: login})
	}
	_, err = d.users.UserByName(ctx, local)
	switch {
	case err == nil:
		return fmt.Errorf("adding alias %q: %w: %q is a user's login name, so the mail already reaches that user", address, ErrExists, local)
	case !errors.Is(err, accounts.ErrNotFound):
		return fmt.Errorf("adding alias %q: looking up user %q: %w", address, local, err)
	}
	return d.insertAlias(ctx, Alias{Address: address, Login: login})
}

// SetCatchAll makes login receive the mail for every address of domain
// that no user or alias takes.
func (d *Directory) SetCatchAll(ctx context.Context, domain, login string) error {
	domain = strings.ToLower(strings.TrimSuffix(strings.TrimSpace(domain), "."))
	if !slices.Contains(d.domains, domain) {
		return fmt.Errorf("setting catch-all of %q: %w: the domain is not one of the box's (%s)", domain, ErrInvalidAddress, strings.Join(d.domains, ", "))
	}
	login, err := d.checkLogin(ctx, login)
	if err != nil {
		return fmt.Errorf("setting catch-all of %q: %w", domain, err)
	}
	return d.storeCatchAll(ctx, CatchAll{Domain: domain, Login: login})
}

// checkAddress validates an alias address and returns its lowered parts.
func (d *Directory) checkAddress(address string) (local, domain string, err error) {
	address = strings.TrimSpace(address)
	local, domain, ok := splitAddress(address)
	if !ok {
		return "", "", fmt.Errorf("alias %q: %w: write it as name@domain", address, ErrInvalidAddress)
	}
	if !slices.Contains(d.domains, domain) {
		return "", "", fmt.Errorf("alias %q: %w: the domain must be one of the box's (%s)", address, ErrInvalidAddress, strings.Join(d.domains, ", "))
	}
	if err := checkLocalPart(local); err != nil {
		return "", "", fmt.Errorf("alias %q: %w", address, err)
	}
	return local, domain, nil
}

// checkLogin returns the lowered login name if a user has it.
func (d *Directory) checkLogin(ctx context.Context, login string) (string, error) {
	login = strings.ToLower(strings.TrimSpace(login))
	_, err := d.users.UserByName(ctx, login)
	if errors.Is(err, accounts.ErrNotFound) {
		return "", fmt.Errorf("%w %q: choose one of the box's users", ErrUnknownLogin, login)
	}
	if err != nil {
		return "", fmt.Errorf("looking up user %q: %w", login, err)
	}
	return login, nil
}

// maxLocalPart is the longest local part, in octets (RFC 5321 section
// 4.5.3.1.1).
const maxLocalPart = 64

// checkLocalPart accepts a Dot-string of RFC 5321 section 4.1.2: atoms of
// atext (RFC 5322 section 3.2.3) joined by single dots. Quoted strings
// and non-ASCII local parts are rejected, because many senders cannot
// reach them. A "+" is rejected too, because Lookup reads it as the start
// of a tag.
func checkLocalPart(local string) error {
	if local == "" || len(local) > maxLocalPart {
		return fmt.Errorf("%w: the part before @ must have 1 to %d characters", ErrInvalidAddress, maxLocalPart)
	}
	if strings.HasPrefix(local, ".") || strings.HasSuffix(local, ".") || strings.Contains(local, "..") {
		return fmt.Errorf("%w: the part before @ may not begin or end with a dot or contain two dots in a row", ErrInvalidAddress)
	}
	for _, r := range local {
		if r == '.' || isAtext(r) && r != '+' {
			continue
		}
		return fmt.Errorf("%w: %q is not allowed before @; use letters, digits and . - _", ErrInvalidAddress, r)
	}
	return nil
}

// isAtext reports whether r is atext of RFC 5322 section 3.2.3.
func isAtext(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return true
	}
	return strings.ContainsRune("!#$%&'*+-/=?^_`{|}~", r)
}

// splitAddress returns the lowered local part and domain of addr.
func splitAddress(addr string) (local, domain string, ok bool) {
	i := strings.LastIndexByte(addr, '@')
	if i <= 0 || i == len(addr)-1 {
		return "", "", false
	}
	return strings.ToLower(addr[:i]), strings.ToLower(strings.TrimSuffix(addr[i+1:], ".")), true
}
