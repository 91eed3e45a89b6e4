package queue

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strconv"
	"strings"
	"time"

	"github.com/heimwolke/heimwolke/appliance/mail/store"
)

// bounce delivers a delivery status notification about the failed
// recipients to the inbox of the user who sent the message.
func (q *Queue) bounce(ctx context.Context, m *queuedMessage, failed []failure) {
	log := q.log.With("queue_id", m.id, "login", m.login)
	if m.login == "" || m.from == "" || q.opts.Local == nil {
		// A message without a sender (a bounce itself) never gets a
		// bounce (RFC 5321 section 4.5.5).
		log.Info("mail bounce dropped", "failed", len(failed))
		return
	}
	lang := "en"
	if q.opts.Language != nil {
		lang = q.opts.Language(ctx, m.login)
	}
	dsn, err := q.buildDSN(lang, m, failed)
	if err != nil {
		log.Error("building bounce failed", "err", err)
		return
	}
	err = q.opts.Local.Deliver(ctx, m.login, "INBOX", bytes.NewReader(dsn))
	if errors.Is(err, store.ErrNoSuchUser) {
		// The sender's account was deleted while the message was queued.
		log.Info("mail bounce dropped: sender deleted", "failed", len(failed), "err", err)
		return
	}
	if err != nil {
		// NOTE: the bounce is not retried, so a store failure here
		// leaves the sender with only this log line.
		log.Error("delivering bounce failed", "err", err)
		return
	}
	log.Info("mail bounce delivered", "failed", len(failed))
}

// buildDSN writes a multipart/report message (RFC 6522) with a
// human-readable part in lang, a message/delivery-status part (RFC 3464
// section 2) and the original header as text/rfc822-headers.
func (q *Queue) buildDSN(lang string, m *queuedMessage, failed []failure) ([]byte, error) {
	now := q.opts.Now()
	header, subject, err := originalHeader(io.NewSectionReader(m.content, 0, m.content.Size()))
	if err != nil {
		return nil, fmt.Errorf("reading header of queued message %d: %w", m.id, err)
	}
	t := func(key string, repl ...string) string {
		return strings.NewReplacer(repl...).Replace(q.opts.Catalog.T(lang, key))
	}

	var body bytes.Buffer
	mw := multipart.NewWriter(&body)

	var text bytes.Buffer
	text.WriteString(t("mail.bounce.intro", "{host}", q.opts.Hostname) + "\n\n")
	for _, f := range failed {
		text.WriteString("  " + f.rcpt + "\n")
		if strings.HasPrefix(f.status, "5") {
			text.WriteString("  " + t("mail.bounce.permanent") + "\n")
		} else {
			days := strconv.Itoa(int(q.opts.MaxAge.Hours() / 24))
			text.WriteString("  " + t("mail.bounce.expired", "{days}", days) + "\n")
		}
		text.WriteString("  " + t("mail.bounce.reason", "{reason}", f.detail) + "\n\n")
	}
	text.WriteString(t("mail.bounce.attached") + "\n")
	if err := writeTextPart(mw, text.String()); err != nil {
		return nil, err
	}

	status := deliveryStatus(q.opts.Hostname, m.created, now, failed)
	w, err := mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"message/delivery-status"}})
	if err != nil {
		return nil, err
	}
	w.Write(status)

	w, err = mw.CreatePart(textproto.MIMEHeader{"Content-Type": {"text/rfc822-headers"}})
	if err != nil {
		return nil, err
	}
	w.Write(header)
	if err := mw.Close(); err != nil {
		return nil, err
	}

	var msg bytes.Buffer
	// The bounce has the null sender (RFC 5321 section 4.5.5), and its
	// delivery to the inbox is final delivery (section 4.4).
	msg.WriteString("Return-Path: <>\r\n")
	from := mail.Address{Name: "Mail Delivery System", Address: "MAILER-DAEMON@" + q.opts.Hostname}
	fmt.Fprintf(&msg, "From: %s\r\n", from.String())
	fmt.Fprintf(&msg, "To: <%s>\r\n", m.from)
	fmt.Fprintf(&msg, "Subject: %s\r\n", mime.QEncoding.Encode("utf-8", t("mail.bounce.subject", "{subject}", subject)))
	fmt.Fprintf(&msg, "Date: %s\r\n", now.Format(time.RFC1123Z))
	fmt.Fprintf(&msg, "Message-ID: <%s@%s>\r\n", randomID(), q.opts.Hostname)
	fmt.Fprintf(&msg, "Auto-Submitted: auto-replied\r\n") // RFC 3834 section 5
	fmt.Fprintf(&msg, "MIME-Version: 1.0\r\n")
	fmt.Fprintf(&msg, "Content-Type: multipart/report; report-type=delivery-status; boundary=%q\r\n\r\n", mw.Boundary())
	msg.Write(body.Bytes())
	return msg.Bytes(), nil
}

func writeTextPart(mw *multipart.Writer, text string) error {
	w, err := mw.CreatePart(textproto.MIMEHeader{
		"Content-Type":              {"text/plain; charset=utf-8"},
		"Content-Transfer-Encoding": {"quoted-printable"},
	})
	if err != nil {
		return err
	}
	qp := quotedprintable.NewWriter(w)
	if _, err := qp.Write([]byte(strings.ReplaceAll(text, "\n", "\r\n"))); err != nil {
		return err
	}
	return qp.Close()
}

// deliveryStatus writes the per-message and per-recipient fields of RFC
// 3464 sections 2.2 and 2.3.
func deliveryStatus(hostname string, arrival, now time.Time, failed []failure) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "Reporting-MTA: dns; %s\r\n", hostname)
	fmt.Fprintf(&b, "Arrival-Date: %s\r\n", arrival.Format(time.RFC1123Z))
	for _, f := range failed {
		b.WriteString("\r\n")
		fmt.Fprintf(&b, "Final-Recipient: rfc822; %s\r\n", f.rcpt)
		b.WriteString("Action: failed\r\n")
		fmt.Fprintf(&b, "Status: %s\r\n", f.status)
		if f.remote != "" {
			host, _, _ := strings.Cut(f.remote, ":")
			fmt.Fprintf(&b, "Remote-MTA: dns; %s\r\n", host)
		}
		fmt.Fprintf(&b, "Diagnostic-Code: smtp; %s\r\n", oneLine(f.detail))
		fmt.Fprintf(&b, "Last-Attempt-Date: %s\r\n", now.Format(time.RFC1123Z))
	}
	return b.Bytes()
}

func oneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// maxBounceHeader caps the original header section that a bounce quotes,
// so that a bounce never reads a whole queue file into memory. It is twice
// the SMTP server's default MaxHeaderBytes of 256 KiB, which leaves room
// for the trace fields and DKIM signatures that the box adds.
const maxBounceHeader = 512 << 10

// originalHeader reads the header section of msg, as queued with its DKIM
// signatures, and returns it with its decoded subject. It reads at most
// maxBounceHeader bytes, and a header section cut there lacks its end.
func originalHeader(msg io.Reader) (header []byte, subject string, err error) {
	start, err := io.ReadAll(io.LimitReader(msg, maxBounceHeader))
	if err != nil {
		return nil, "", err
	}
	end := bytes.Index(start, []byte("\r\n\r\n"))
	if end < 0 {
		end = len(start)
	}
	header = start[:end]
	if m, err := mail.ReadMessage(bytes.NewReader(start)); err == nil {
		subject = m.Header.Get("Subject")
		if dec, err := new(mime.WordDecoder).DecodeHeader(subject); err == nil {
			subject = dec
		}
	}
	return append(header, "\r\n"...), subject, nil
}

func randomID() string {
	var b [12]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
