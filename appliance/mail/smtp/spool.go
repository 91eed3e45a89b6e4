package smtp

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	gosmtp "github.com/emersion/go-smtp"
	"golang.org/x/sys/unix"
)

// spoolPrefix starts the name of every spool file, so that New removes only
// files that a server wrote.
const spoolPrefix = "data-"

var (
	errHeaderTooLarge = &gosmtp.SMTPError{Code: 552, EnhancedCode: gosmtp.EnhancedCode{5, 3, 4},
		Message: "Message header too large"}
	errSpoolFull = &gosmtp.SMTPError{Code: 452, EnhancedCode: gosmtp.EnhancedCode{4, 3, 1},
		Message: "Insufficient system storage, try again later"}
	errReadData = &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 4, 2},
		Message: "Error reading message data"}
)

// spool is the folder where messages are written during DATA, so that the
// server does not hold a message in memory as a whole.
type spool struct {
	dir       string
	maxHeader int
	// temporary is true for a folder that New created in os.TempDir and
	// Close removes.
	temporary bool
}

// openSpool creates dir with mode 0700, or a new folder in os.TempDir when
// dir is empty, and removes the spool files that a crashed server left.
func openSpool(dir string, maxHeader int, log *slog.Logger) (*spool, error) {
	if dir == "" {
		tmp, err := os.MkdirTemp("", "heimwolke-smtp-spool-")
		if err != nil {
			return nil, fmt.Errorf("creating SMTP spool folder: %w", err)
		}
		return &spool{dir: tmp, maxHeader: maxHeader, temporary: true}, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating SMTP spool folder %s: %w", dir, err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("restricting SMTP spool folder %s to mode 0700: %w", dir, err)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("reading SMTP spool folder %s: %w", dir, err)
	}
	for _, e := range entries {
		if e.IsDir() || !strings.HasPrefix(e.Name(), spoolPrefix) {
			continue
		}
		if err := os.Remove(filepath.Join(dir, e.Name())); err != nil {
			return nil, fmt.Errorf("removing leftover SMTP spool file: %w", err)
		}
		log.Info("smtp spool leftover removed", "file", e.Name())
	}
	return &spool{dir: dir, maxHeader: maxHeader}, nil
}

// freeBytes returns the bytes that an unprivileged process may still write
// to the spool folder's file system.
func (sp *spool) freeBytes() (int64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(sp.dir, &st); err != nil {
		return 0, fmt.Errorf("reading free space of %s: %w", sp.dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

// close removes the folder if openSpool created it in os.TempDir.
func (sp *spool) close() error {
	if !sp.temporary {
		return nil
	}
	return os.RemoveAll(sp.dir)
}

// spooledMessage is a message as received in DATA. Its file has no name in
// the spool folder, so the kernel frees it on Close or when the process
// dies. Only the header section is in memory.
type spooledMessage struct {
	file *os.File
	size int64
	// header contains the header fields, up to but not including the empty
	// line. Callers may replace it, for example to remove fields.
	header []byte
	// bodyOffset is the file offset of the empty line before the body,
	// or size for a message without one.
	bodyOffset int64
}

// receive writes the DATA stream r to a new spool file and reads its header
// section back. It returns an *gosmtp.SMTPError for the client on failure.
func (sp *spool) receive(r io.Reader, log *slog.Logger) (*spooledMessage, error) {
	m, err := sp.write(r, log)
	if err != nil {
		return nil, err
	}
	if err := m.readHeader(sp.maxHeader, log); err != nil {
		m.Close()
		return nil, err
	}
	return m, nil
}

// write copies r to a new spool file. Its message has no header fields
// until readHeader.
func (sp *spool) write(r io.Reader, log *slog.Logger) (*spooledMessage, error) {
	f, err := os.CreateTemp(sp.dir, spoolPrefix+"*")
	if err != nil {
		log.Error("creating spool file failed", "dir", sp.dir, "err", err)
		return nil, errTempLocal
	}
	// Unlinked at once: the message lives only as long as f is open.
	if err := os.Remove(f.Name()); err != nil {
		f.Close()
		log.Error("unlinking spool file failed", "file", f.Name(), "err", err)
		return nil, errTempLocal
	}
	n, err := io.Copy(f, readerOnly{r})
	var readErr readError
	var smtpErr *gosmtp.SMTPError
	switch {
	case err == nil:
		return &spooledMessage{file: f, size: n}, nil
	case errors.As(err, &readErr) && errors.As(readErr.err, &smtpErr):
		err = smtpErr
	case errors.As(err, &readErr):
		err = errReadData
	case errors.Is(err, syscall.ENOSPC):
		log.Error("writing spool file failed", "err", err)
		err = errSpoolFull
	default:
		log.Error("writing spool file failed", "err", err)
		err = errTempLocal
	}
	f.Close()
	return nil, err
}

// readHeader reads the header fields from the file into m.header.
func (m *spooledMessage) readHeader(maxHeader int, log *slog.Logger) error {
	header, err := readHeader(io.NewSectionReader(m.file, 0, m.size), maxHeader)
	var smtpErr *gosmtp.SMTPError
	if errors.As(err, &smtpErr) {
		return smtpErr
	}
	if err != nil {
		log.Error("reading spool file failed", "err", err)
		return errTempLocal
	}
	m.header = header
	m.bodyOffset = int64(len(header))
	return nil
}

// readError marks an error of the DATA stream, as opposed to one of the
// spool file.
type readError struct{ err error }

func (e readError) Error() string { return e.err.Error() }

// readerOnly wraps the DATA stream's errors in readError.
type readerOnly struct{ r io.Reader }

func (r readerOnly) Read(p []byte) (int, error) {
	n, err := r.r.Read(p)
	if err != nil && err != io.EOF {
		err = readError{err}
	}
	return n, err
}

// readHeader returns the header fields of the message in r, up to but not
// including the empty line that ends them (RFC 5322 section 2.1). A
// message without an empty line is all header. It fails with
// errHeaderTooLarge past max bytes.
func readHeader(r io.Reader, max int) ([]byte, error) {
	br := bufio.NewReaderSize(r, 4096)
	var header []byte
	lineStart := true
	for {
		line, err := br.ReadSlice('\n')
		// A line that starts with CR or LF ends the fields, as in
		// headerFields.
		if lineStart && len(line) > 0 && (line[0] == '\r' || line[0] == '\n') {
			return header, nil
		}
		if len(header)+len(line) > max {
			return nil, errHeaderTooLarge
		}
		header = append(header, line...)
		lineStart = err == nil
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case errors.Is(err, io.EOF):
			return header, nil
		case err != nil:
			return nil, err
		}
	}
}

// reader returns the message with prefix in front of its header fields,
// reading the body from the spool file. Each call returns a new reader
// from the start.
func (m *spooledMessage) reader(prefix []byte) io.Reader {
	return io.MultiReader(bytes.NewReader(prefix), bytes.NewReader(m.header), m.body())
}

// body returns a new reader of the message after its header section,
// starting with the empty line, from the spool file.
func (m *spooledMessage) body() *io.SectionReader {
	return io.NewSectionReader(m.file, m.bodyOffset, m.size-m.bodyOffset)
}

// len returns the size of the message that reader returns, without prefix.
func (m *spooledMessage) len() int64 {
	return int64(len(m.header)) + m.size - m.bodyOffset
}

// Close closes the spool file, which frees it.
func (m *spooledMessage) Close() error {
	return m.file.Close()
}
