//go:build tools

// Package deps pins modules that packages under construction will import, so
// that go.mod stays tidy while they are written. Remove an import here once a
// real package imports it.
package deps

import (
	_ "blitiri.com.ar/go/spf"
	_ "github.com/caddyserver/certmagic"
	_ "github.com/emersion/go-ical"
	_ "github.com/emersion/go-imap/v2"
	_ "github.com/emersion/go-message"
	_ "github.com/emersion/go-msgauth/dkim"
	_ "github.com/emersion/go-sasl"
	_ "github.com/emersion/go-smtp"
	_ "github.com/emersion/go-vcard"
	_ "github.com/emersion/go-webdav"
	_ "github.com/hetznercloud/hcloud-go/v2/hcloud"
	_ "github.com/huin/goupnp"
	_ "github.com/libdns/libdns"
)
