package smtp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"time"

	gosmtp "github.com/emersion/go-smtp"
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

// readMessage reads the message data, which go-smtp has already limited to
// MaxMessageBytes.
// NOTE: the message is held in memory for the checks and the delivery, so
// the peak memory is MaxMessageBytes times the connections in DATA at once.
func readMessage(r io.Reader) ([]byte, error) {
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(r); err != nil {
		var smtpErr *gosmtp.SMTPError
		if errors.As(err, &smtpErr) {
			return nil, smtpErr
		}
		return nil, &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 4, 2}, Message: "Error reading message data"}
	}
	return buf.Bytes(), nil
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

// deliverLocal stores msg for each login once, in folder.
func (s *sessionBase) deliverLocal(ctx context.Context, logins []string, folder string, msg []byte) error {
	seen := map[string]bool{}
	for _, login := range logins {
		if seen[login] {
			continue
		}
		seen[login] = true
		// NOTE: when a later delivery fails, the earlier users already
		// have the message and get it again when the client retries.
		if err := s.server.opts.Deliverer.Deliver(ctx, login, folder, bytes.NewReader(msg)); err != nil {
			s.log.Error("delivery failed", "login", login, "folder", folder, "err", err)
			return errTempLocal
		}
	}
	return nil
}
