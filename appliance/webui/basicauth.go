package webui

import (
	"context"
	"errors"
	"log/slog"
	"net/http"

	"github.com/heimwolke/heimwolke/packages/accounts"
)

// BasicAuthOptions configures BasicAuth.
type BasicAuthOptions struct {
	// Accounts checks the app passwords. Required.
	Accounts *accounts.Store

	// Scope is the service that the protected handler provides, such as
	// accounts.ScopeDAV. An app password must cover it. Required.
	Scope accounts.Scope

	// Protocol names the protocol in the accounts log, such as "dav".
	Protocol string

	// Realm is the realm of the challenge. Empty means "Heimwolke".
	Realm string

	// Logger receives internal errors. Nil means slog.Default().
	Logger *slog.Logger
}

type userKey struct{}

// AuthenticatedUser returns the user that BasicAuth admitted the request
// for.
func AuthenticatedUser(ctx context.Context) (*accounts.User, bool) {
	u, ok := ctx.Value(userKey{}).(*accounts.User)
	return u, ok
}

// BasicAuth returns a handler that admits a request to next when its HTTP
// Basic credentials (RFC 7617) are a login name and an app password that
// covers opts.Scope, and AuthenticatedUser then returns the user. Missing or
// wrong credentials get 401 with a challenge, and attempts that the shared
// login throttle holds back get 429 with Retry-After.
//
// Basic auth sends the password in the clear, so serve the handler over
// TLS only; BasicAuth does not check that.
func BasicAuth(opts BasicAuthOptions, next http.Handler) http.Handler {
	if opts.Realm == "" {
		opts.Realm = "Heimwolke"
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	// RFC 7617 section 2.1: with charset="UTF-8", the client encodes the
	// user name and password in UTF-8.
	challenge := `Basic realm="` + opts.Realm + `", charset="UTF-8"`

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		name, secret, ok := r.BasicAuth()
		if !ok {
			unauthorized(w, challenge)
			return
		}
		source := sourceAddr(r)
		user, err := opts.Accounts.CheckAppPassword(r.Context(), name, secret, source, opts.Protocol, opts.Scope)

		var throttled *accounts.ThrottledError
		switch {
		case err == nil:
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), userKey{}, user)))
		case errors.As(err, &throttled):
			w.Header().Set("Retry-After", retryAfter(throttled.RetryAfter))
			http.Error(w, "too many failed logins, retry later", http.StatusTooManyRequests)
		case errors.Is(err, accounts.ErrBadCredentials):
			unauthorized(w, challenge)
		default:
			opts.Logger.Error("checking app password", "source", source, "protocol", opts.Protocol, "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
		}
	})
}

// unauthorized sends 401 with the challenge (RFC 9110 section 11.6.1).
func unauthorized(w http.ResponseWriter, challenge string) {
	w.Header().Set("WWW-Authenticate", challenge)
	http.Error(w, "app password required", http.StatusUnauthorized)
}
