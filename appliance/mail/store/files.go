package store

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// tmpDirName is the folder below Options.Dir where message files are
// written before they are renamed into place.
const tmpDirName = "tmp"

// fileRef is a message file, named relative to the store's folder.
type fileRef struct {
	name string
	size int64
}

// newFileName returns a random name below the user's folder, spread over 256
// subfolders so that no folder grows past a few thousand entries for
// typical mailboxes.
func newFileName(login string) (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	name := hex.EncodeToString(b[:])
	return login + "/" + name[:2] + "/" + name, nil
}

// writeMessage copies msg into a new message file with CRLF line ends and
// returns the file and its header section. The file is fsynced and renamed
// into place, and its folder fsynced, before writeMessage returns: an index
// row that names it may then commit.
func (s *Store) writeMessage(login string, msg io.Reader) (fileRef, []byte, error) {
	name, err := newFileName(login)
	if err != nil {
		return fileRef{}, nil, err
	}
	tmp, err := os.CreateTemp(filepath.Join(s.dir, tmpDirName), "msg-*")
	if err != nil {
		return fileRef{}, nil, err
	}
	committed := false
	defer func() {
		if !committed {
			tmp.Close()
			os.Remove(tmp.Name())
		}
	}()

	w := bufio.NewWriterSize(tmp, 64<<10)
	hw := &headerWriter{}
	n, err := copyCRLF(io.MultiWriter(w, hw), msg, s.opts.MaxMessageSize)
	if err != nil {
		return fileRef{}, nil, err
	}
	if err := w.Flush(); err != nil {
		return fileRef{}, nil, err
	}
	if err := tmp.Sync(); err != nil {
		return fileRef{}, nil, err
	}
	if err := tmp.Close(); err != nil {
		return fileRef{}, nil, err
	}

	final := filepath.Join(s.dir, filepath.FromSlash(name))
	if err := s.ensureDir(filepath.Dir(final)); err != nil {
		return fileRef{}, nil, err
	}
	if err := os.Rename(tmp.Name(), final); err != nil {
		return fileRef{}, nil, err
	}
	committed = true
	if err := syncDir(filepath.Dir(final)); err != nil {
		os.Remove(final)
		return fileRef{}, nil, err
	}
	return fileRef{name: name, size: n}, hw.header(), nil
}

// linkMessage gives an existing message file a second name, for COPY.
func (s *Store) linkMessage(login, src string) (string, error) {
	name, err := newFileName(login)
	if err != nil {
		return "", err
	}
	final := filepath.Join(s.dir, filepath.FromSlash(name))
	if err := s.ensureDir(filepath.Dir(final)); err != nil {
		return "", err
	}
	if err := os.Link(filepath.Join(s.dir, filepath.FromSlash(src)), final); err != nil {
		return "", err
	}
	return name, nil
}

// ensureDir creates dir and its parents below the store's folder and
// fsyncs each new folder's parent, so the new entries survive a power cut.
func (s *Store) ensureDir(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != s.dir {
		if err := s.ensureDir(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return syncDir(parent)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return fmt.Errorf("syncing folder %s: %w", dir, err)
	}
	return d.Close()
}

// OpenMessage opens the message file that Message.File names.
func (s *Store) OpenMessage(file string) (*os.File, error) {
	if !fs.ValidPath(file) {
		return nil, fmt.Errorf("opening message: invalid file name %q", file)
	}
	return os.Open(filepath.Join(s.dir, filepath.FromSlash(file)))
}

// removeFiles deletes message files whose rows are gone. A file that stays
// behind after a failure or crash is removed by the next Open.
func (s *Store) removeFiles(files []fileRef) {
	for _, f := range files {
		err := os.Remove(filepath.Join(s.dir, filepath.FromSlash(f.name)))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			s.logger.Warn("mail store: removing message file", "file", f.name, "err", err)
		}
	}
}

func filesSize(files []fileRef) int64 {
	var n int64
	for _, f := range files {
		n += f.size
	}
	return n
}

// removeOrphans deletes message files without an index row, and every file
// in the temporary folder.
func (s *Store) removeOrphans(ctx context.Context) error {
	known := make(map[string]bool)
	rows, err := s.db.QueryContext(ctx, `SELECT file FROM mail_messages`)
	if err != nil {
		return fmt.Errorf("listing message files: %w", err)
	}
	for rows.Next() {
		var f string
		if err := rows.Scan(&f); err != nil {
			rows.Close()
			return fmt.Errorf("listing message files: %w", err)
		}
		known[f] = true
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("listing message files: %w", err)
	}

	removed := 0
	err = filepath.WalkDir(s.dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(s.dir, path)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if known[rel] {
			return nil
		}
		if !strings.HasPrefix(rel, tmpDirName+"/") {
			s.logger.Info("mail store: removing message file without index row", "file", rel)
		}
		removed++
		return os.Remove(path)
	})
	if err != nil {
		return fmt.Errorf("removing orphaned message files: %w", err)
	}
	if removed > 0 {
		s.logger.Info("mail store: removed orphaned files", "count", removed)
	}
	return nil
}

// copyCRLF copies src to dst, turning bare LF and bare CR into CRLF as RFC
// 5322 section 2.3 requires, and fails with ErrTooBig past max bytes.
func copyCRLF(dst io.Writer, src io.Reader, max int64) (int64, error) {
	br := bufio.NewReaderSize(src, 64<<10)
	bw := bufio.NewWriterSize(dst, 64<<10)
	var n int64
	prevCR := false
	for {
		line, err := br.ReadSlice('\n')
		if len(line) > 0 {
			k, werr := writeCRLFChunk(bw, line, &prevCR)
			n += k
			if werr != nil {
				return n, werr
			}
			if n > max {
				return n, fmt.Errorf("%w: more than %d bytes", ErrTooBig, max)
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return n, err
		}
	}
	if prevCR {
		k, err := bw.WriteString("\n")
		n += int64(k)
		if err != nil {
			return n, err
		}
	}
	return n, bw.Flush()
}

// writeCRLFChunk writes chunk, which ends at most at its first LF, with
// normalized line ends. prevCR carries a CR at the end of the last chunk.
func writeCRLFChunk(w *bufio.Writer, chunk []byte, prevCR *bool) (int64, error) {
	var out int64
	for len(chunk) > 0 {
		i := bytes.IndexAny(chunk, "\r\n")
		if i < 0 {
			if *prevCR {
				w.WriteString("\n")
				out++
				*prevCR = false
			}
			k, err := w.Write(chunk)
			return out + int64(k), err
		}
		if i > 0 && *prevCR {
			w.WriteString("\n")
			out++
			*prevCR = false
		}
		w.Write(chunk[:i])
		out += int64(i)
		switch chunk[i] {
		case '\r':
			if *prevCR {
				w.WriteString("\n")
				out++
			}
			w.WriteByte('\r')
			out++
			*prevCR = true
		case '\n':
			if !*prevCR {
				w.WriteByte('\r')
				out++
			}
			w.WriteByte('\n')
			out++
			*prevCR = false
		}
		chunk = chunk[i+1:]
	}
	return out, nil
}

// maxIndexedHeader is the largest header section kept in the index. A
// message with a larger one has an empty header row, and readers parse its
// file instead.
const maxIndexedHeader = 256 << 10

// headerWriter keeps the bytes up to and including the first empty line.
type headerWriter struct {
	buf    []byte
	done   bool
	tooBig bool
}

func (h *headerWriter) Write(p []byte) (int, error) {
	if h.done {
		return len(p), nil
	}
	start := max(len(h.buf)-3, 0)
	h.buf = append(h.buf, p...)
	switch {
	case len(h.buf) >= 2 && string(h.buf[:2]) == "\r\n":
		// No header fields at all, just the empty line.
		h.buf = h.buf[:2]
		h.done = true
	case bytes.Contains(h.buf[start:], []byte("\r\n\r\n")):
		i := bytes.Index(h.buf[start:], []byte("\r\n\r\n"))
		h.buf = h.buf[:start+i+4]
		h.done = true
	case len(h.buf) > maxIndexedHeader:
		h.buf = nil
		h.tooBig = true
		h.done = true
	}
	return len(p), nil
}

// header returns the header section, or nil if it is larger than
// maxIndexedHeader. A message without an empty line is all header (RFC 5322
// section 2.1 makes the body optional).
func (h *headerWriter) header() []byte {
	if h.tooBig {
		return nil
	}
	return h.buf
}
