package smtp

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/heimwolke/heimwolke/appliance/mail/store"
)

// Replies with the SMTP code and the enhanced status code of RFC 3463.
var (
	errRelayDenied = &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 7, 1},
		Message: "Relaying denied: this server accepts mail only for its own domains"}
	errNoSuchUser = &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1},
		Message: "No such mailbox here"}
	errBadAddress = &gosmtp.SMTPError{Code: 501, EnhancedCode: gosmtp.EnhancedCode{5, 1, 3},
		Message: "Invalid address syntax"}
	errTempLocal = &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0},
		Message: "Local error, try again later"}
	errTooManyMessages = &gosmtp.SMTPError{Code: 450, EnhancedCode: gosmtp.EnhancedCode{4, 7, 0},
		Message: "Too many messages, try again later"}
	errDMARCReject = &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 7, 1},
		Message: "Rejected by the sender domain's DMARC policy"}
	errAuthRequired = &gosmtp.SMTPError{Code: 530, EnhancedCode: gosmtp.EnhancedCode{5, 7, 0},
		Message: "Authentication required"}
	errSenderNotOwned = &gosmtp.SMTPError{Code: 553, EnhancedCode: gosmtp.EnhancedCode{5, 7, 1},
		Message: "Sender address does not belong to the authenticated user"}
	errFromNotOwned = &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 7, 1},
		Message: "From address does not belong to the authenticated user"}
	errBadHeader = &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 6, 0},
		Message: "Message header is invalid"}
	errAuthThrottled = &gosmtp.SMTPError{Code: 454, EnhancedCode: gosmtp.EnhancedCode{4, 7, 0},
		Message: "Too many failed logins, try again later"}
	errEncryptionRequired = &gosmtp.SMTPError{Code: 530, EnhancedCode: gosmtp.EnhancedCode{5, 7, 0},
		Message: "Must issue a STARTTLS command first"}
)

// sessionBase contains what inbound and submission sessions share: the
// envelope of the current transaction.
type sessionBase struct {
	server *Server
	conn   *gosmtp.Conn
	remote netip.Addr
	log    *slog.Logger

	from       string
	recipients []string
}

func (s *sessionBase) Reset() {
	s.from = ""
	s.recipients = nil
}

func (s *sessionBase) Logout() error {
	s.log.Debug("session ended")
	return nil
}

func (s *sessionBase) tls() bool {
	_, ok := s.conn.TLSConnectionState()
	return ok
}

// checkSpoolRoom rejects a transaction while the spool's file system has
// less than 1.5 times MaxMessageBytes free, as Postfix does by default
// (queue_minfree in postconf(5)). A nearly full disk then fails MAIL with
// 452 4.3.1, before DATA can fill it up for the box's other writes.
func (s *sessionBase) checkSpoolRoom() error {
	free, err := s.server.spool.freeBytes()
	if err != nil {
		s.log.Error("spool space check failed", "err", err)
		return errTempLocal
	}
	need := s.server.opts.MaxMessageBytes + s.server.opts.MaxMessageBytes/2
	if free < need {
		s.log.Warn("message rejected", "remote", s.remote, "reason", "spool disk full",
			"free_bytes", free, "need_bytes", need)
		return errSpoolFull
	}
	return nil
}

// receivedField returns a Received trace field (RFC 5321 section 4.4), with
// the "with" keyword of RFC 3848.
func (s *sessionBase) receivedField(with, id string) string {
	return fmt.Sprintf("Received: from %s ([%s])\r\n\tby %s with %s id %s;\r\n\t%s\r\n",
		sanitizeHelo(s.conn.Hostname()), s.remote, s.server.opts.Hostname, with, id,
		time.Now().Format(time.RFC1123Z))
}

// sanitizeHelo keeps the client's EHLO name from breaking the header field.
func sanitizeHelo(helo string) string {
	b := []byte(helo)
	for i, c := range b {
		if c <= ' ' || c >= 0x7f || c == '(' || c == ')' || c == ';' {
			b[i] = '_'
		}
	}
	if len(b) > 255 {
		b = b[:255]
	}
	return string(b)
}

// deliverLocal stores the message that open returns for each login once,
// in folder. A MultiDeliverer stores it for all logins or for none.
func (s *sessionBase) deliverLocal(ctx context.Context, logins []string, folder string, open func() io.Reader) error {
	logins = slices.Compact(slices.Sorted(slices.Values(logins)))
	if len(logins) == 0 {
		return nil
	}
	if md, ok := s.server.opts.Deliverer.(MultiDeliverer); ok {
		if err := md.DeliverAll(ctx, logins, folder, open()); err != nil {
			return s.deliveryError(logins, folder, err)
		}
		return nil
	}
	for _, login := range logins {
		// NOTE: without DeliverAll, when a later delivery fails, the
		// earlier users already have the message and get it again when
		// the client retries.
		if err := s.server.opts.Deliverer.Deliver(ctx, login, folder, open()); err != nil {
			return s.deliveryError(logins, folder, err)
		}
	}
	return nil
}

// deliveryError logs a failed delivery to logins and returns the reply to
// DATA. A recipient whose account was deleted after RCPT gets 550 5.1.1
// when it is the only login. With more logins the whole message gets 451,
// because one reply to DATA covers every recipient, and the client's
// retry then gets 550 for that recipient at RCPT.
func (s *sessionBase) deliveryError(logins []string, folder string, err error) error {
	if errors.Is(err, store.ErrNoSuchUser) {
		s.log.Info("delivery failed: account deleted after RCPT", "remote", s.remote, "logins", logins, "err", err)
		if len(logins) == 1 {
			return errNoSuchUser
		}
		return errTempLocal
	}
	s.log.Error("delivery failed", "logins", logins, "folder", folder, "err", err)
	return errTempLocal
}
