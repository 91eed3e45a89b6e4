package store

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
)

// ExportMbox writes the user's mailbox folder to w in the mboxrd format: each
// message starts with a "From " line carrying its internal date, lines that
// match ^>*From  get one more '>', and line ends become LF, as mail readers
// on Unix expect. The format is described at
// https://www.loc.gov/preservation/digital/formats/fdd/fdd000385.shtml.
func (s *Store) ExportMbox(ctx context.Context, login, folder string, w io.Writer) error {
	m, err := s.Mailbox(ctx, login, folder)
	if err != nil {
		return fmt.Errorf("exporting mailbox %q of %q: %w", folder, login, err)
	}
	bw := bufio.NewWriterSize(w, 64<<10)
	err = s.EachMessage(ctx, m.ID, AllUIDs, false, func(msg *Message) error {
		return s.writeMboxMessage(bw, msg)
	})
	if err != nil {
		return fmt.Errorf("exporting mailbox %q of %q: %w", folder, login, err)
	}
	return bw.Flush()
}

// mboxDateLayout is the date of the "From " line, as asctime(3) prints it.
const mboxDateLayout = "Mon Jan _2 15:04:05 2006"

func (s *Store) writeMboxMessage(w *bufio.Writer, msg *Message) error {
	f, err := s.OpenMessage(msg.File)
	if err != nil {
		return err
	}
	defer f.Close()

	fmt.Fprintf(w, "From MAILER-DAEMON %s\n", msg.InternalDate.UTC().Format(mboxDateLayout))
	if err := writeMboxrdBody(w, f); err != nil {
		return err
	}
	_, err = w.WriteString("\n")
	return err
}

// writeMboxrdBody copies a message with CRLF line ends, quoting "From "
// lines and ending the last line with LF.
func writeMboxrdBody(w *bufio.Writer, r io.Reader) error {
	br := bufio.NewReaderSize(r, 64<<10)
	atLineStart := true
	lastByte := byte('\n')
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			if atLineStart && isFromLine(line) {
				w.WriteByte('>')
			}
			atLineStart = line[len(line)-1] == '\n'
			if atLineStart {
				line = bytes.TrimSuffix(line[:len(line)-1], []byte("\r"))
				w.Write(line)
				w.WriteByte('\n')
				lastByte = '\n'
			} else {
				w.Write(line)
				lastByte = line[len(line)-1]
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
	}
	if lastByte != '\n' {
		return w.WriteByte('\n')
	}
	return nil
}

// isFromLine reports whether line matches ^>*From , the lines that mboxrd
// quotes.
func isFromLine(line []byte) bool {
	line = bytes.TrimLeft(line, ">")
	return bytes.HasPrefix(line, []byte("From "))
}
