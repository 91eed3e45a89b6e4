package imap

import (
	"bufio"
	"bytes"
	"io"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"

	"github.com/heimwolke/heimwolke/appliance/mail/store"
)

// Fetch serves FETCH and UID FETCH (RFC 9051 section 6.4.5). Headers come
// from the index; the message file is read only for body parts, BINARY and
// BODYSTRUCTURE.
func (sess *session) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	if err := sess.checkLogin(); err != nil {
		return err
	}
	sel := sess.selected
	targets := sel.live.resolve(sel.tracker, numSet)
	if len(targets) == 0 {
		return nil
	}

	// RFC 9051 section 6.4.5: BODY[] without .PEEK sets \Seen.
	markSeen := false
	for _, bs := range options.BodySection {
		markSeen = markSeen || !bs.Peek
	}
	for _, bs := range options.BinarySection {
		markSeen = markSeen || !bs.Peek
	}
	if markSeen && !sel.readOnly {
		_, err := sess.srv.opts.Store.StoreFlags(sess.ctx(), sel.mailbox.ID, filterRanges(targets), store.FlagsAdd, []string{string(imap.FlagSeen)}, sel.tracker)
		if err != nil {
			return sess.srv.storeError(err)
		}
		options.Flags = true
	}
	return sess.fetchTargets(w, targets, options)
}

func (sess *session) fetchTargets(w *imapserver.FetchWriter, targets []target, options *imap.FetchOptions) error {
	needFile := options.BodyStructure != nil || len(options.BinarySection) > 0 || len(options.BinarySectionSize) > 0
	needHeader := options.Envelope
	for _, bs := range options.BodySection {
		if isHeaderOnly(bs) {
			needHeader = true
		} else {
			needFile = true
		}
	}

	sel := sess.selected
	return sess.srv.opts.Store.EachMessage(sess.ctx(), sel.mailbox.ID, uidRanges(targets), needHeader && !needFile, func(m *store.Message) error {
		t, ok := findTarget(targets, m.UID)
		if !ok {
			return nil
		}
		return sess.fetchMessage(w.CreateMessage(t.seq), m, options, needFile || needHeader)
	})
}

// isHeaderOnly reports whether a section needs only the message's header
// section: HEADER, HEADER.FIELDS and HEADER.FIELDS.NOT of the top level.
func isHeaderOnly(bs *imap.FetchItemBodySection) bool {
	return len(bs.Part) == 0 && bs.Specifier == imap.PartSpecifierHeader
}

func (sess *session) fetchMessage(rw *imapserver.FetchResponseWriter, m *store.Message, options *imap.FetchOptions, needContent bool) error {
	var content []byte
	if needContent {
		var err error
		content, err = sess.messageContent(m)
		if err != nil {
			rw.Close()
			return sess.srv.storeError(err)
		}
	}

	rw.WriteUID(imap.UID(m.UID))
	if options.Flags {
		rw.WriteFlags(imapFlags(m.Flags))
	}
	if options.InternalDate {
		rw.WriteInternalDate(m.InternalDate)
	}
	if options.RFC822Size {
		rw.WriteRFC822Size(m.Size)
	}
	if options.Envelope {
		rw.WriteEnvelope(envelope(content))
	}
	if options.BodyStructure != nil {
		rw.WriteBodyStructure(imapserver.ExtractBodyStructure(bytes.NewReader(content)))
	}
	for _, bs := range options.BodySection {
		buf := imapserver.ExtractBodySection(bytes.NewReader(content), bs)
		if err := writeSection(rw.WriteBodySection(bs, int64(len(buf))), buf); err != nil {
			return err
		}
	}
	for _, bs := range options.BinarySection {
		buf := imapserver.ExtractBinarySection(bytes.NewReader(content), bs)
		if err := writeSection(rw.WriteBinarySection(bs, int64(len(buf))), buf); err != nil {
			return err
		}
	}
	for _, bss := range options.BinarySectionSize {
		rw.WriteBinarySectionSize(bss, imapserver.ExtractBinarySectionSize(bytes.NewReader(content), bss))
	}
	return rw.Close()
}

func writeSection(wc io.WriteCloser, buf []byte) error {
	_, writeErr := wc.Write(buf)
	closeErr := wc.Close()
	if writeErr != nil {
		return writeErr
	}
	return closeErr
}

// messageContent returns the indexed header section when m carries one, or
// else the whole message file.
func (sess *session) messageContent(m *store.Message) ([]byte, error) {
	if m.Header != nil {
		return m.Header, nil
	}
	f, err := sess.srv.opts.Store.OpenMessage(m.File)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	buf := make([]byte, 0, m.Size)
	return readAll(f, buf)
}

func readAll(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			return buf, nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// envelope parses the header section at the start of content.
func envelope(content []byte) *imap.Envelope {
	h, err := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(content)))
	if err != nil && h.Len() == 0 {
		return &imap.Envelope{}
	}
	return imapserver.ExtractEnvelope(h)
}
