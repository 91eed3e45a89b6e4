package files

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/text/unicode/norm"
)

// checkError is a request that the handler rejects before the webdav
// package sees it.
type checkError struct {
	status int
	body   string // sent as text/plain, or as XML when it starts with "<"
}

func (e *checkError) Error() string { return e.body }

func reject(status int, format string, args ...any) (int, error) {
	return status, &checkError{status: status, body: fmt.Sprintf(format, args...)}
}

// finiteDepthError is the precondition of RFC 4918 section 9.1: this
// server does not answer PROPFIND with Depth infinity.
const finiteDepthError = `<?xml version="1.0" encoding="utf-8"?>` +
	`<D:error xmlns:D="DAV:"><D:propfind-finite-depth/></D:error>`

func writeCheckError(w http.ResponseWriter, status int, err error) {
	var ce *checkError
	if !errors.As(err, &ce) {
		http.Error(w, http.StatusText(status), status)
		return
	}
	if strings.HasPrefix(ce.body, "<") {
		w.Header().Set("Content-Type", "application/xml; charset=utf-8")
		w.WriteHeader(status)
		io.WriteString(w, ce.body)
		return
	}
	http.Error(w, ce.body, status)
}

// cleanURLPath returns the request's path in Unicode NFC. It rejects dot
// segments (also when sent as %2e%2e), encoded slashes, backslashes and NUL
// bytes, so that no path can be read two ways, and names that the file
// system cannot store.
func cleanURLPath(u *url.URL) (string, error) {
	escaped := strings.ToLower(u.EscapedPath())
	if strings.Contains(escaped, "%2f") {
		return "", errors.New("invalid path: encoded slash (%2F) in a name")
	}
	p := u.Path
	if strings.ContainsAny(p, "\\\x00") {
		return "", errors.New("invalid path: backslash or NUL byte in a name")
	}
	for _, segment := range strings.Split(p, "/") {
		if segment == "." || segment == ".." {
			return "", errors.New("invalid path: dot segment")
		}
	}
	p = norm.NFC.String(p)
	for _, segment := range strings.Split(p, "/") {
		if len(segment) > maxNameBytes {
			return "", errNameTooLong
		}
	}
	return p, nil
}

// errNameTooLong rejects a name that ext4 cannot store, as the web UI's
// checkName does. The length counts bytes in NFC, the form stored on disk.
var errNameTooLong = fmt.Errorf("invalid path: a name is longer than %d bytes in UTF-8, the maximum that the file system stores, so shorten it", maxNameBytes)

// noteNameTooLong makes the response 400 when err is ENAMETOOLONG, for
// which the webdav package would send 403, 404 or 405. cleanURLPath rejects
// such names first, so this covers only names that the file system
// limits more tightly.
func (fsys *rootFS) noteNameTooLong(err error) error {
	if errors.Is(err, syscall.ENAMETOOLONG) {
		fsys.req.override(http.StatusBadRequest, errNameTooLong.Error())
	}
	return err
}

// checkRequest rejects what the webdav package would accept but should
// not, rewrites the Destination header into NFC, and replaces an XML body
// by a checked copy, which it returns.
func (h *Handler) checkRequest(r *http.Request, f folder, urlPath string) ([]byte, int, error) {
	if reserved(strings.TrimSuffix(urlPath, "/")) && r.Method != "GET" && r.Method != "HEAD" {
		status, err := reject(http.StatusForbidden, "%s", errReservedName)
		return nil, status, err
	}
	switch r.Method {
	case "PROPFIND":
		// RFC 4918 section 9.1: a missing Depth header means infinity.
		if d := r.Header.Get("Depth"); d == "" || strings.EqualFold(d, "infinity") {
			status, err := reject(http.StatusForbidden, finiteDepthError)
			return nil, status, err
		}
		return h.readXMLBody(r)
	case "PROPPATCH", "LOCK":
		return h.readXMLBody(r)
	case "COPY", "MOVE":
		status, err := checkDestination(r, f)
		return nil, status, err
	case "PUT":
		r.Body = &bodyWatcher{ReadCloser: r.Body}
	}
	return nil, 0, nil
}

// readXMLBody reads the body up to the limit and rejects document type
// declarations: the DAV XML of RFC 4918 needs none, and they are the way
// to entity expansion attacks.
func (h *Handler) readXMLBody(r *http.Request) ([]byte, int, error) {
	if r.ContentLength > h.maxXMLBytes {
		status, err := reject(http.StatusRequestEntityTooLarge, "XML body larger than %d bytes", h.maxXMLBytes)
		return nil, status, err
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, h.maxXMLBytes+1))
	if err != nil {
		status, err := reject(http.StatusBadRequest, "reading request body failed")
		return nil, status, err
	}
	if int64(len(body)) > h.maxXMLBytes {
		status, err := reject(http.StatusRequestEntityTooLarge, "XML body larger than %d bytes", h.maxXMLBytes)
		return nil, status, err
	}
	if bytes.Contains(bytes.ToUpper(body), []byte("<!DOCTYPE")) || bytes.Contains(bytes.ToUpper(body), []byte("<!ENTITY")) {
		status, err := reject(http.StatusBadRequest, "XML body with a document type declaration; send DAV XML without DOCTYPE or ENTITY")
		return nil, status, err
	}
	if err := checkNamespaces(body); err != nil {
		status, err := reject(http.StatusBadRequest, "invalid XML body: %v", err)
		return nil, status, err
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	return body, 0, nil
}

// checkNamespaces rejects a body that is not well-formed or that
// undeclares a namespace prefix (xmlns:p=""), which Namespaces in XML 1.0
// section 3 forbids and the webdav package's parser lets through.
func checkNamespaces(body []byte) error {
	d := xml.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := d.RawToken()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		start, ok := tok.(xml.StartElement)
		if !ok {
			continue
		}
		for _, a := range start.Attr {
			if a.Name.Space == "xmlns" && a.Value == "" {
				return fmt.Errorf("empty namespace name for prefix %q", a.Name.Local)
			}
		}
	}
}

// namesQuota reports whether a PROPFIND body asks for the RFC 4331
// properties by name.
func namesQuota(body []byte) bool {
	return bytes.Contains(body, []byte("quota-available-bytes")) || bytes.Contains(body, []byte("quota-used-bytes"))
}

// checkDestination applies the path rules to the Destination header of
// COPY and MOVE, and answers 502 for a destination in another folder tree
// (RFC 4918 section 9.8.5 and 9.9.4).
func checkDestination(r *http.Request, f folder) (int, error) {
	hdr := r.Header.Get("Destination")
	if hdr == "" {
		return reject(http.StatusBadRequest, "missing Destination header")
	}
	u, err := url.Parse(hdr)
	if err != nil {
		return reject(http.StatusBadRequest, "invalid Destination header")
	}
	p, err := cleanURLPath(u)
	if err != nil {
		return reject(http.StatusBadRequest, "invalid Destination header: %v", err)
	}
	if p != f.prefix && !strings.HasPrefix(p, f.prefix+"/") {
		return reject(http.StatusBadGateway, "destination lies in another folder; copy the files instead")
	}
	if reserved(strings.TrimSuffix(p, "/")) {
		return reject(http.StatusForbidden, "%s", errReservedName)
	}
	u.Path, u.RawPath = p, ""
	r.Header.Set("Destination", u.String())
	return 0, nil
}

// requestState carries what the file system learns during one request
// back to the response.
type requestState struct {
	status      int    // replaces the status that the webdav package picks
	message     string // the body sent with status
	bodyFailed  bool   // the PUT body ended early or failed to read
	internalErr bool
}

func (s *requestState) override(status int, message string) {
	if s.status == 0 {
		s.status, s.message = status, message
	}
}

// bodyWatcher records whether a PUT body failed before its end, so that
// the upload is discarded rather than stored cut off.
type bodyWatcher struct {
	io.ReadCloser
	state *requestState
}

func (b *bodyWatcher) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if err != nil && err != io.EOF && b.state != nil {
		b.state.bodyFailed = true
	}
	return n, err
}

// statusRewriter replaces the status that the webdav package chose for
// failures it cannot classify, such as a full quota, for which it sends
// 405.
type statusRewriter struct {
	http.ResponseWriter
	req       *requestState
	rewritten bool
}

func (w *statusRewriter) WriteHeader(status int) {
	if w.req.status != 0 && status >= 400 {
		w.rewritten = true
		h := w.Header()
		h.Set("Content-Type", "text/plain; charset=utf-8")
		h.Set("Content-Length", strconv.Itoa(len(w.req.message)+1))
		w.ResponseWriter.WriteHeader(w.req.status)
		io.WriteString(w.ResponseWriter, w.req.message+"\n")
		return
	}
	w.ResponseWriter.WriteHeader(status)
}

func (w *statusRewriter) Write(p []byte) (int, error) {
	if w.rewritten {
		return len(p), nil
	}
	return w.ResponseWriter.Write(p)
}
