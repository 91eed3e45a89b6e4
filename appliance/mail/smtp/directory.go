package smtp

import (
	"context"
	"errors"
	"strings"

	"github.com/heimwolke/heimwolke/packages/accounts"
)

// Errors of Directory.Lookup.
var (
	// ErrNotLocal means that the address's domain is not one of the box's
	// domains, so the box does not accept mail for it from outside.
	ErrNotLocal = errors.New("domain is not served by this box")
	// ErrUnknownRecipient means that the domain is the box's, but no user,
	// alias or catch-all takes the address.
	ErrUnknownRecipient = errors.New("no such recipient")
)

// Directory maps mail addresses to the users of the box.
type Directory interface {
	// Lookup returns the login name of the user who receives mail for
	// addr, or ErrNotLocal, or ErrUnknownRecipient.
	Lookup(ctx context.Context, addr string) (login string, err error)
	// Owns reports whether login may send with addr as its envelope or
	// From address: its own address in a box domain, or an alias of it.
	Owns(ctx context.Context, login, addr string) (bool, error)
}

// StaticDirectory is a Directory from fixed tables. Its fields must not
// change while a server uses it; build a new one to change them.
type StaticDirectory struct {
	// Domains are the box's mail domains in ASCII, such as "example.org".
	Domains []string
	// Aliases maps an address in lower case to the login name that
	// receives its mail and may send with it, such as "info@example.org"
	// -> "anna".
	Aliases map[string]string
	// CatchAll maps a domain to the login name that receives mail for
	// every address of the domain that no user or alias takes.
	CatchAll map[string]string
	// Users looks up login names; *accounts.Store implements it. A user
	// named anna receives mail for anna@ every domain.
	Users UserLookup
}

// UserLookup finds a user by login name, returning an error that wraps
// accounts.ErrNotFound when there is none.
type UserLookup interface {
	UserByName(ctx context.Context, name string) (*accounts.User, error)
}

// splitAddress returns the lowered local part and domain of addr.
func splitAddress(addr string) (local, domain string, ok bool) {
	i := strings.LastIndexByte(addr, '@')
	if i <= 0 || i == len(addr)-1 {
		return "", "", false
	}
	return strings.ToLower(addr[:i]), strings.ToLower(strings.TrimSuffix(addr[i+1:], ".")), true
}

func (d *StaticDirectory) isLocalDomain(domain string) bool {
	for _, dom := range d.Domains {
		if strings.EqualFold(dom, domain) {
			return true
		}
	}
	return false
}

// Lookup implements Directory. It tries the user, then the alias, then
// both again without a "+tag" suffix of the local part (anna+shop@ is
// anna@), then the domain's catch-all.
func (d *StaticDirectory) Lookup(ctx context.Context, addr string) (string, error) {
	local, domain, ok := splitAddress(addr)
	if !ok || !d.isLocalDomain(domain) {
		return "", ErrNotLocal
	}

	login, err := d.lookupLocal(ctx, local, domain)
	if !errors.Is(err, ErrUnknownRecipient) {
		return login, err
	}
	if base, _, tagged := strings.Cut(local, "+"); tagged && base != "" {
		login, err = d.lookupLocal(ctx, base, domain)
		if !errors.Is(err, ErrUnknownRecipient) {
			return login, err
		}
	}
	if login, ok := d.CatchAll[domain]; ok {
		return login, nil
	}
	return "", ErrUnknownRecipient
}

// lookupLocal finds the user or alias for local@domain.
func (d *StaticDirectory) lookupLocal(ctx context.Context, local, domain string) (string, error) {

	_, err := d.Users.UserByName(ctx, local)
	if err == nil {
		return local, nil
	}
	if !errors.Is(err, accounts.ErrNotFound) {
		return "", err
	}
	if login, ok := d.Aliases[local+"@"+domain]; ok {
		return login, nil
	}
	return "", ErrUnknownRecipient
}

// Owns implements Directory. A catch-all does not make its user the owner
// of every address of the domain.
func (d *StaticDirectory) Owns(ctx context.Context, login, addr string) (bool, error) {
	local, domain, ok := splitAddress(addr)
	if !ok || !d.isLocalDomain(domain) {
		return false, nil
	}
	if local == strings.ToLower(login) {
		return true, nil
	}
	return d.Aliases[local+"@"+domain] == strings.ToLower(login), nil
}
