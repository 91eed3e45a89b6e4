package smtp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"net/mail"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/heimwolke/heimwolke/appliance/mail/queue"
	"github.com/heimwolke/heimwolke/packages/accounts"
)

// submissionSession accepts mail from the box's users (RFC 6409).
type submissionSession struct {
	sessionBase
	login string
}

func (s *submissionSession) AuthMechanisms() []string {
	return []string{sasl.Plain, sasl.Login}
}

func (s *submissionSession) Auth(mech string) (sasl.Server, error) {
	if !s.tls() {
		return nil, errEncryptionRequired
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return gosmtp.ErrAuthFailed
			}
			return s.authenticate(username, password)
		}), nil
	case sasl.Login:
		return newLoginServer(s.authenticate), nil
	}
	return nil, gosmtp.ErrAuthUnknownMechanism
}

func (s *submissionSession) authenticate(username, password string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	username = s.loginName(ctx, username)
	u, err := s.server.opts.Passwords.CheckAppPassword(ctx, username, password, s.remote, "smtp", accounts.ScopeMail)
	var throttled *accounts.ThrottledError
	switch {
	case errors.As(err, &throttled):
		return errAuthThrottled
	case errors.Is(err, accounts.ErrBadCredentials):
		return gosmtp.ErrAuthFailed
	case err != nil:
		s.log.Error("login check failed", "err", err)
		return errTempLocal
	}
	s.login = u.Name
	s.log.Info("login", "user", u.Name, "remote", s.remote)
	return nil
}

// loginName maps a mail address that a client sends as its user name, as
// many clients do by default, to the login name of the user who owns it.
// Any other name is returned as it is.
func (s *submissionSession) loginName(ctx context.Context, username string) string {
	if !strings.Contains(username, "@") {
		return username
	}
	login, err := s.server.opts.Directory.Lookup(ctx, username)
	if err != nil {
		return username
	}
	if owned, err := s.server.opts.Directory.Owns(ctx, login, username); err != nil || !owned {
		return username
	}
	return login
}

func (s *submissionSession) Mail(from string, opts *gosmtp.MailOptions) error {
	if s.login == "" {
		return errAuthRequired
	}
	if !s.server.perUser.Allow(s.login) {
		s.log.Info("message rejected", "user", s.login, "reason", "message rate")
		return errTooManyMessages
	}
	if err := s.checkSpoolRoom(); err != nil {
		return err
	}
	owned, err := s.owns(from)
	if err != nil {
		return err
	}
	if !owned {
		s.log.Info("sender rejected", "user", s.login, "from", from)
		return errSenderNotOwned
	}
	s.from = from
	return nil
}

func (s *submissionSession) owns(addr string) (bool, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	owned, err := s.server.opts.Directory.Owns(ctx, s.login, addr)
	if err != nil {
		s.log.Error("sender lookup failed", "from", addr, "err", err)
		return false, errTempLocal
	}
	return owned, nil
}

func (s *submissionSession) Rcpt(to string, opts *gosmtp.RcptOptions) error {
	if _, _, ok := splitAddress(to); !ok {
		return errBadAddress
	}
	s.recipients = append(s.recipients, to)
	return nil
}

func (s *submissionSession) Data(r io.Reader) error {
	msg, err := s.server.spool.receive(r, s.log)
	if err != nil {
		return err
	}
	defer msg.Close()
	extra, err := s.checkHeader(msg.header)
	if err != nil {
		return err
	}
	// Bcc recipients must not be visible to the others (RFC 5322 section
	// 3.6.3), so no copy keeps the field, as Postfix does by default. A
	// Return-Path is added only by final delivery (RFC 5321 section 4.4).
	msg.header = removeFields(msg.header, "bcc", "resent-bcc", "return-path")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	local, remote, err := s.splitRecipients(ctx)
	if err != nil {
		return err
	}
	id := strconv.FormatUint(s.server.nextSessionID(), 36)
	prefix := append([]byte(s.receivedField("ESMTPSA", id)), extra...)

	if len(remote) > 0 {
		env := queue.Envelope{Login: s.login, From: s.from, To: remote}
		if err := s.enqueue(ctx, env, msg, prefix); err != nil {
			return err
		}
	}
	localPrefix := append([]byte(returnPathField(s.from)), prefix...)
	open := func() io.Reader { return msg.reader(localPrefix) }
	if err := s.deliverLocal(ctx, local, "INBOX", open); err != nil {
		return err
	}
	s.log.Info("message submitted", "id", id, "user", s.login, "local", len(local), "remote", len(remote))
	return nil
}

// enqueue hands the message with prefix to the outbound queue. Only the
// header section is in memory, and the queue reads the body from the spool
// file.
func (s *submissionSession) enqueue(ctx context.Context, env queue.Envelope, msg *spooledMessage, prefix []byte) error {
	header := make([]byte, 0, len(prefix)+len(msg.header))
	header = append(append(header, prefix...), msg.header...)
	qid, err := s.server.opts.Outbox.Enqueue(ctx, env, header, msg.body())
	if err != nil {
		s.log.Error("enqueueing failed", "user", s.login, "err", err)
		return errTempLocal
	}
	s.log.Info("message queued", "user", s.login, "queue_id", qid, "recipients", len(env.To))
	return nil
}

// splitRecipients returns the logins of local recipients and the addresses
// of the others. A local address without a user, alias or catch-all is a
// permanent error.
func (s *submissionSession) splitRecipients(ctx context.Context) (local, remote []string, err error) {
	for _, to := range s.recipients {
		login, err := s.server.opts.Directory.Lookup(ctx, to)
		switch {
		case errors.Is(err, ErrNotLocal):
			remote = append(remote, to)
		case errors.Is(err, ErrUnknownRecipient):
			return nil, nil, &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1},
				Message: "No such mailbox here: " + to}
		case err != nil:
			s.log.Error("recipient lookup failed", "rcpt", to, "err", err)
			return nil, nil, errTempLocal
		default:
			local = append(local, login)
		}
	}
	return local, remote, nil
}

// checkHeader requires that every From address in the header fields
// belongs to the user. It returns the Date and Message-ID fields to add
// when the client left them out (RFC 6409 section 8.2 and 8.3), since
// receivers and DKIM expect them.
func (s *submissionSession) checkHeader(header []byte) ([]byte, error) {
	fields, _ := headerFields(header)
	froms := fieldValues(fields, "from")
	if len(froms) != 1 {
		return nil, errBadHeader
	}
	addrs, err := mail.ParseAddressList(froms[0])
	if err != nil || len(addrs) == 0 {
		return nil, errBadHeader
	}
	for _, a := range addrs {
		owned, err := s.owns(a.Address)
		if err != nil {
			return nil, err
		}
		if !owned {
			s.log.Info("message rejected", "user", s.login, "header_from", a.Address)
			return nil, errFromNotOwned
		}
	}

	var extra []byte
	if !hasField(fields, "date") {
		extra = append(extra, "Date: "+time.Now().Format(time.RFC1123Z)+"\r\n"...)
	}
	if !hasField(fields, "message-id") {
		var b [12]byte
		rand.Read(b[:])
		extra = append(extra, "Message-ID: <"+hex.EncodeToString(b[:])+"@"+s.server.opts.Hostname+">\r\n"...)
	}
	return extra, nil
}
