package smtp

import (
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/heimwolke/heimwolke/appliance/mail/auth"
)

// inboundSession receives mail from other servers for local addresses.
type inboundSession struct {
	sessionBase
	logins []string
}

func (s *inboundSession) Reset() {
	s.sessionBase.Reset()
	s.logins = nil
}

func (s *inboundSession) Mail(from string, opts *gosmtp.MailOptions) error {
	if !s.server.perAddress.Allow(s.remote.String()) {
		s.log.Info("message rejected", "remote", s.remote, "reason", "message rate")
		return errTooManyMessages
	}
	s.from = from
	return nil
}

func (s *inboundSession) Rcpt(to string, opts *gosmtp.RcptOptions) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	login, err := s.server.opts.Directory.Lookup(ctx, to)
	switch {
	case errors.Is(err, ErrNotLocal):
		s.log.Info("recipient rejected", "remote", s.remote, "rcpt", to, "reason", "relay")
		return errRelayDenied
	case errors.Is(err, ErrUnknownRecipient):
		s.log.Info("recipient rejected", "remote", s.remote, "rcpt", to, "reason", "unknown")
		return errNoSuchUser
	case err != nil:
		s.log.Error("recipient lookup failed", "rcpt", to, "err", err)
		return errTempLocal
	}
	s.recipients = append(s.recipients, to)
	s.logins = append(s.logins, login)
	return nil
}

func (s *inboundSession) Data(r io.Reader) error {
	msg, err := readMessage(r)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	id := strconv.FormatUint(s.server.nextSessionID(), 36)
	with := "ESMTP"
	if s.tls() {
		with = "ESMTPS"
	}
	header := s.receivedField(with, id)

	folder := "INBOX"
	if c := s.server.opts.Checker; c != nil {
		res := c.Check(ctx, auth.Envelope{IP: net.IP(s.remote.AsSlice()), Helo: s.conn.Hostname(), MailFrom: s.from}, msg)
		s.log.Info("message checked", "remote", s.remote, "from", s.from, "spf", string(res.SPF),
			"dmarc", res.DMARC.Result, "disposition", res.Disposition.String())
		if res.Disposition == auth.Reject {
			return errDMARCReject
		}
		if res.Disposition == auth.Junk {
			folder = "Junk"
		}
		header = res.Header + header
		msg = removeAuthResults(msg, c.AuthServID)
	}

	full := append([]byte(header), msg...)
	if err := s.deliverLocal(ctx, s.logins, folder, full); err != nil {
		return err
	}
	s.log.Info("message delivered", "id", id, "from", s.from, "recipients", len(s.logins), "folder", folder, "bytes", len(full))
	return nil
}
