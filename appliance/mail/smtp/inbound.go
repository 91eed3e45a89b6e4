package smtp

import (
	"context"
	"errors"
	"fmt"
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
	if !s.server.perAddress.Allow(sourceNetwork(s.remote).String()) {
		s.log.Info("message rejected", "remote", s.remote, "reason", "message rate")
		return errTooManyMessages
	}
	if err := s.checkSpoolRoom(); err != nil {
		return err
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
	msg, err := s.server.spool.receive(r, s.log)
	if err != nil {
		return err
	}
	defer msg.Close()
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
		res, err := s.check(ctx, c, msg)
		if err != nil {
			s.log.Error("message check failed", "remote", s.remote, "from", s.from, "err", err)
			return errTempLocal
		}
		s.log.Info("message checked", "remote", s.remote, "from", s.from, "spf", string(res.SPF),
			"dmarc", res.DMARC.Result, "disposition", res.Disposition.String())
		if res.Disposition == auth.Reject {
			return errDMARCReject
		}
		if res.Disposition == auth.Junk {
			folder = "Junk"
		}
		header = res.Header + header
		msg.header = removeAuthResults(msg.header, c.AuthServID)
	}

	// Final delivery replaces any Return-Path that the sender wrote with
	// the envelope sender (RFC 5321 section 4.4).
	msg.header = removeFields(msg.header, "return-path")
	prefix := []byte(returnPathField(s.from) + header)
	open := func() io.Reader { return msg.reader(prefix) }
	if err := s.deliverLocal(ctx, s.logins, folder, open); err != nil {
		return err
	}
	s.log.Info("message delivered", "id", id, "from", s.from, "recipients", len(s.logins), "folder", folder,
		"bytes", int64(len(prefix))+msg.len())
	return nil
}

// check runs SPF, DKIM and DMARC on the message as received, reading its
// body from the spool file. It returns an error when that file cannot be
// read, because the DKIM results would then be incomplete.
func (s *inboundSession) check(ctx context.Context, c *auth.Checker, msg *spooledMessage) (auth.Result, error) {
	env := auth.Envelope{IP: net.IP(s.remote.AsSlice()), Helo: s.conn.Hostname(), MailFrom: s.from}
	body := &readErrorRecorder{r: msg.body()}
	res := c.Check(ctx, env, msg.header, body)
	if body.err != nil {
		return auth.Result{}, fmt.Errorf("reading spool file: %w", body.err)
	}
	return res, nil
}

// readErrorRecorder keeps the first error other than io.EOF that r
// returns, for callers such as auth.Checker.Check that log read errors
// instead of returning them.
type readErrorRecorder struct {
	r   io.Reader
	err error
}

func (r *readErrorRecorder) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF && r.err == nil {
		r.err = err
	}
	return n, err
}
