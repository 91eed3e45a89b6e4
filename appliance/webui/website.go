package webui

import (
	"errors"
	"io"
	"mime"
	"net/http"
	"os"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/heimwolke/heimwolke/appliance/website"
)

// WebsitePublisher publishes the household's website; *website.Site
// implements it.
type WebsitePublisher interface {
	// NewUploadFile creates an empty temporary file on the website's file
	// system for an upload. The caller closes and removes it.
	NewUploadFile() (*os.File, error)

	// PublishZip replaces the website with the contents of a zip archive.
	// It returns a *website.ZipError for a rejected archive.
	PublishZip(r io.ReaderAt, size int64) error
}

const (
	websitePagePath = "/admin/website"

	// websiteUploadTimeout is how long reading an upload and publishing it
	// may take, in place of the server's read and write time-outs of a
	// minute or less. 500 MiB over Wi-Fi at 2 MB/s take about 4 minutes,
	// and unpacking them to an SD card may take as long again.
	websiteUploadTimeout = 15 * time.Minute

	// maxCSRFFieldBytes is more than the length of a CSRF token.
	maxCSRFFieldBytes = 256
)

// websiteData is the content of the website page.
type websiteData struct {
	MaxUploadMiB int
	MaxFiles     int
	MaxTotalMiB  int
}

// registerWebsiteRoutes adds the owner's page for publishing the website.
func (h *Handler) registerWebsiteRoutes() {
	h.mux.HandleFunc("GET "+websitePagePath, h.websitePage)
	h.mux.HandleFunc("POST "+websitePagePath, h.publishWebsite)
}

// requireWebsiteOwner returns the visit of the logged-in owner, like the
// admin pages, or writes the login redirect, the 403 page or, without a
// WebsitePublisher, the 404 page and returns nil.
func (h *Handler) requireWebsiteOwner(w http.ResponseWriter, r *http.Request) *visit {
	v := (&adminPages{Handler: h}).requireOwner(w, r)
	if v != nil && h.website == nil {
		h.notFound(w, r)
		return nil
	}
	return v
}

func (h *Handler) websitePage(w http.ResponseWriter, r *http.Request) {
	v := h.requireWebsiteOwner(w, r)
	if v == nil {
		return
	}
	p := h.websitePageData(v)
	if r.URL.Query().Get("notice") == "published" {
		p.Notice = p.T("website.admin.published")
	}
	h.render(w, http.StatusOK, "website_admin", p)
}

func (h *Handler) websitePageData(v *visit) *page {
	p := h.newPage(v, "website.admin.title")
	p.Data = websiteData{
		MaxUploadMiB: website.MaxUploadBytes >> 20,
		MaxFiles:     website.MaxFiles,
		MaxTotalMiB:  website.MaxTotalBytes >> 20,
	}
	return p
}

// isWebsiteUpload reports whether r is the upload form of the website
// page. checkForm leaves its body alone, because publishWebsite streams it
// to disk and checks its size and CSRF token itself.
func (h *Handler) isWebsiteUpload(r *http.Request) bool {
	if h.website == nil || r.Method != http.MethodPost || r.URL.Path != websitePagePath {
		return false
	}
	mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mediaType == "multipart/form-data"
}

// publishWebsite receives the zip archive of the upload form and publishes
// it. The form must send its CSRF token before the file, as browsers send
// the fields in the order of the form, so the token is checked before the
// upload is stored.
func (h *Handler) publishWebsite(w http.ResponseWriter, r *http.Request) {
	v := h.requireWebsiteOwner(w, r)
	if v == nil {
		return
	}
	if !h.isWebsiteUpload(r) {
		h.renderWebsiteError(w, v, http.StatusUnprocessableEntity, h.t(v.lang, "website.admin.no_file"))
		return
	}

	// Errors mean that w does not support deadlines (a test recorder),
	// which then do not apply either.
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(websiteUploadTimeout))
	rc.SetWriteDeadline(time.Now().Add(websiteUploadTimeout))
	r.Body = http.MaxBytesReader(w, r.Body, website.MaxUploadBytes+maxFormBytes)

	upload, size, ok := h.receiveWebsiteUpload(w, r, v)
	if !ok {
		return
	}
	defer func() {
		upload.Close()
		if err := os.Remove(upload.Name()); err != nil {
			h.log.Error("removing website upload", "path", upload.Name(), "err", err)
		}
	}()

	start := h.now()
	err := h.website.PublishZip(upload, size)
	var zipErr *website.ZipError
	switch {
	case errors.As(err, &zipErr):
		h.log.Info("website upload rejected", "user", v.session.User.Name, "source", v.source, "bytes", size, "err", err)
		h.renderWebsiteError(w, v, http.StatusUnprocessableEntity, h.zipErrorMessage(v.lang, zipErr))
	case errors.Is(err, syscall.ENOSPC):
		h.log.Error("publishing website", "user", v.session.User.Name, "bytes", size, "err", err)
		h.renderWebsiteError(w, v, http.StatusInsufficientStorage, h.t(v.lang, "website.admin.no_space"))
	case err != nil:
		h.internalError(w, v, "publishing website", err)
	default:
		h.log.Info("website published by upload", "user", v.session.User.Name, "source", v.source, "bytes", size, "duration", h.now().Sub(start).Round(time.Millisecond))
		http.Redirect(w, r, websitePagePath+"?notice=published", http.StatusSeeOther)
	}
}

// receiveWebsiteUpload checks the CSRF field of the multipart form and
// copies the file field to an upload file. It writes the error page and
// returns ok false when it rejects the form.
func (h *Handler) receiveWebsiteUpload(w http.ResponseWriter, r *http.Request, v *visit) (upload *os.File, size int64, ok bool) {
	mr, err := r.MultipartReader()
	if err != nil {
		h.renderWebsiteError(w, v, http.StatusBadRequest, h.t(v.lang, "website.admin.bad_form"))
		return nil, 0, false
	}
	part, err := mr.NextPart()
	if err != nil || part.FormName() != "csrf" {
		h.rejectWebsiteCSRF(w, r, v)
		return nil, 0, false
	}
	token, err := io.ReadAll(io.LimitReader(part, maxCSRFFieldBytes))
	if err != nil || !v.session.ValidCSRF(string(token)) {
		h.rejectWebsiteCSRF(w, r, v)
		return nil, 0, false
	}

	part, err = mr.NextPart()
	if err != nil || part.FormName() != "site" || part.FileName() == "" {
		h.renderWebsiteError(w, v, http.StatusUnprocessableEntity, h.t(v.lang, "website.admin.no_file"))
		return nil, 0, false
	}
	upload, err = h.website.NewUploadFile()
	if err != nil {
		h.internalError(w, v, "creating website upload file", err)
		return nil, 0, false
	}
	size, err = io.Copy(upload, io.LimitReader(part, website.MaxUploadBytes+1))
	if err == nil && size > website.MaxUploadBytes {
		err = &http.MaxBytesError{Limit: website.MaxUploadBytes}
	}
	if err == nil && size == 0 {
		err = errEmptyUpload
	}
	if err != nil {
		upload.Close()
		os.Remove(upload.Name())
		h.renderUploadFailure(w, v, size, err)
		return nil, 0, false
	}
	return upload, size, true
}

var errEmptyUpload = errors.New("empty upload")

// renderUploadFailure writes the page for an upload that could not be
// stored: too large, empty, or broken off.
func (h *Handler) renderUploadFailure(w http.ResponseWriter, v *visit, size int64, err error) {
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		h.log.Info("website upload rejected: too large", "user", v.session.User.Name, "source", v.source, "bytes", size)
		h.renderWebsiteError(w, v, http.StatusRequestEntityTooLarge,
			h.t(v.lang, "website.admin.upload_too_large", "max", website.MaxUploadBytes>>20))
	case errors.Is(err, errEmptyUpload):
		h.renderWebsiteError(w, v, http.StatusUnprocessableEntity, h.t(v.lang, "website.admin.no_file"))
	case errors.Is(err, syscall.ENOSPC):
		h.log.Error("storing website upload", "user", v.session.User.Name, "bytes", size, "err", err)
		h.renderWebsiteError(w, v, http.StatusInsufficientStorage, h.t(v.lang, "website.admin.no_space"))
	default:
		// Mostly a browser that stopped sending, or a time-out.
		h.log.Info("website upload failed", "user", v.session.User.Name, "source", v.source, "bytes", size, "err", err)
		h.renderWebsiteError(w, v, http.StatusBadRequest, h.t(v.lang, "website.admin.bad_form"))
	}
}

func (h *Handler) rejectWebsiteCSRF(w http.ResponseWriter, r *http.Request, v *visit) {
	h.log.Info("form rejected: CSRF token missing or invalid", "source", v.source, "path", r.URL.Path)
	h.renderMessage(w, v, http.StatusForbidden, "error.csrf.title", "error.csrf", "")
}

// renderWebsiteError shows the website page with message at the file
// field.
func (h *Handler) renderWebsiteError(w http.ResponseWriter, v *visit, status int, message string) {
	p := h.websitePageData(v)
	p.Errors.add("site", message)
	h.render(w, status, "website_admin", p)
}

// zipErrorMessage returns the message for a rejected archive in lang.
func (h *Handler) zipErrorMessage(lang string, err *website.ZipError) string {
	return h.t(lang, "website.zip."+string(err.Reason),
		"name", printableName(err.Name),
		"files", website.MaxFiles,
		"folders", website.MaxFolders,
		"size", website.MaxTotalBytes>>20,
		"ratio", website.MaxCompressionRatio)
}

// printableName returns an entry name for a message: invalid UTF-8 and
// control characters replaced, and shortened to 120 characters.
func printableName(name string) string {
	name = strings.ToValidUTF8(name, "\uFFFD")
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return '\uFFFD'
		}
		return r
	}, name)
	if runes := []rune(name); len(runes) > 120 {
		name = string(runes[:119]) + "…"
	}
	return name
}
