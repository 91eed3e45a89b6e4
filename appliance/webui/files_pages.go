package webui

import (
	_ "embed"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/heimwolke/heimwolke/packages/accounts"
)

// filesScript shows the progress of uploads. The pages work without it.
//
//go:embed static/files.js
var filesScript []byte

const (
	// fileUploadTimeout replaces the server's read and write timeouts
	// for an upload form: 4 GiB over a 2 MB/s uplink take about 35
	// minutes.
	fileUploadTimeout = 2 * time.Hour

	// filesCSP is the Content-Security-Policy of the file pages: the
	// default one plus the upload script and its requests.
	filesCSP = "default-src 'none'; style-src 'self'; script-src 'self'; connect-src 'self'; " +
		"form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)

// The folders of the file browser, in the order of its tabs.
var fileFolders = []string{"home", "shared", "website"}

// registerFileRoutes adds the file browser, the share link list and the
// public share link pages, when Options.Files is set.
func (h *Handler) registerFileRoutes() {
	if h.files == nil {
		return
	}
	h.mux.HandleFunc("GET /static/files.js", serveFilesScript)
	h.mux.HandleFunc("GET /files", h.filesHome)
	h.mux.HandleFunc("GET /files/{$}", h.filesHome)
	h.mux.HandleFunc("GET /files/{folder}/{path...}", h.filesBrowse)
	h.mux.HandleFunc("POST /files/{folder}/upload", h.filesUpload)
	h.mux.HandleFunc("POST /files/{folder}/mkdir", h.filesMkdir)
	h.mux.HandleFunc("POST /files/{folder}/rename", h.filesRename)
	h.mux.HandleFunc("POST /files/{folder}/delete", h.filesDelete)
	h.mux.HandleFunc("POST /files/{folder}/share", h.filesShare)
	h.mux.HandleFunc("GET /files/shares", h.sharesPage)
	h.mux.HandleFunc("POST /files/shares/{id}/revoke", h.revokeShare)
	h.registerShareRoutes()
}

func serveFilesScript(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/javascript; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(filesScript)
}

// isFileUpload reports whether r is an upload form of the file browser or
// of a drop box link. checkForm leaves its body alone, because the
// handler streams it to disk and checks the CSRF token itself.
func (h *Handler) isFileUpload(r *http.Request) bool {
	if h.files == nil || r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/upload") {
		return false
	}
	if !strings.HasPrefix(r.URL.Path, "/files/") && !strings.HasPrefix(r.URL.Path, "/s/") {
		return false
	}
	mediaType, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	return err == nil && mediaType == "multipart/form-data"
}

// fileRow is an entry of a listing.
type fileRow struct {
	Name     string
	Path     string // below the folder, for the forms
	Href     string
	Dir      bool
	Size     string
	Modified time.Time
}

type crumb struct{ Name, Href string }

type folderTab struct {
	Name, Href string
	Current    bool
}

// filesData is the content of the file browser page.
type filesData struct {
	Folder  string
	Tabs    []folderTab
	Dir     string
	Crumbs  []crumb
	Entries []fileRow
}

// folderHref returns the browser URL of p below folder.
func folderHref(folder, p string, dir bool) string {
	href := "/files/" + folder + "/" + escapeSegments(p)
	if dir && p != "" {
		href += "/"
	}
	return href
}

func escapeSegments(p string) string {
	if p == "" {
		return ""
	}
	segments := strings.Split(p, "/")
	for i, s := range segments {
		segments[i] = url.PathEscape(s)
	}
	return strings.Join(segments, "/")
}

// formatSize formats n bytes with decimal units, in lang's number format.
func formatSize(lang string, n int64) string {
	units := []string{"B", "kB", "MB", "GB", "TB"}
	f, unit := float64(n), 0
	for f >= 1000 && unit < len(units)-1 {
		f /= 1000
		unit++
	}
	s := strconv.FormatFloat(f, 'f', 1, 64)
	if unit == 0 {
		s = strconv.FormatInt(n, 10)
	}
	if lang == "de" {
		s = strings.Replace(s, ".", ",", 1)
	}
	return s + " " + units[unit]
}

func (h *Handler) filesHome(w http.ResponseWriter, r *http.Request) {
	if requireSession(w, r) == nil {
		return
	}
	http.Redirect(w, r, "/files/home/", http.StatusSeeOther)
}

// filesVisit returns the visit and its user, or writes the login redirect
// and returns nil.
func filesVisit(w http.ResponseWriter, r *http.Request) (*visit, *accounts.User) {
	v := requireSession(w, r)
	if v == nil {
		return nil, nil
	}
	return v, &v.session.User
}

// filesBrowse lists a folder or downloads a file.
func (h *Handler) filesBrowse(w http.ResponseWriter, r *http.Request) {
	v, user := filesVisit(w, r)
	if v == nil {
		return
	}
	folder, p := r.PathValue("folder"), strings.Trim(r.PathValue("path"), "/")
	file, err := h.files.OpenFile(r.Context(), user, folder, p)
	if err != nil {
		h.fileError(w, v, "opening file", err)
		return
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil {
		h.fileError(w, v, "opening file", err)
		return
	}
	if !fi.IsDir() {
		serveDownload(w, r, file, fi)
		return
	}

	entries, err := h.files.ListFiles(r.Context(), user, folder, p)
	if err != nil {
		h.fileError(w, v, "listing folder", err)
		return
	}
	pg := h.newPage(v, "files.title")
	pg.Notice = h.filesNotice(v.lang, r)
	pg.Data = h.filesPageData(v, user, folder, p, entries)
	w.Header().Set("Content-Security-Policy", filesCSP)
	h.render(w, http.StatusOK, "files", pg)
}

func (h *Handler) filesPageData(v *visit, user *accounts.User, folder, dir string, entries []FileEntry) filesData {
	data := filesData{Folder: folder, Dir: dir}
	for _, name := range fileFolders {
		if name == "website" && user.Role != accounts.RoleOwner {
			continue
		}
		data.Tabs = append(data.Tabs, folderTab{Name: name, Href: folderHref(name, "", true), Current: name == folder})
	}
	data.Crumbs = []crumb{{Name: h.t(v.lang, "files.folder."+folder), Href: folderHref(folder, "", true)}}
	if dir != "" {
		parts := strings.Split(dir, "/")
		for i, part := range parts {
			data.Crumbs = append(data.Crumbs, crumb{Name: part, Href: folderHref(folder, strings.Join(parts[:i+1], "/"), true)})
		}
	}
	for _, e := range entries {
		p := path.Join(dir, e.Name)
		row := fileRow{Name: e.Name, Path: p, Href: folderHref(folder, p, e.Dir), Dir: e.Dir, Modified: e.Modified}
		if !e.Dir {
			row.Size = formatSize(v.lang, e.Size)
		}
		data.Entries = append(data.Entries, row)
	}
	return data
}

// serveDownload sends a file as an attachment, so that the browser saves
// it and never renders it as a page of this site.
func serveDownload(w http.ResponseWriter, r *http.Request, file *os.File, fi os.FileInfo) {
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": fi.Name()}))
	w.Header().Set("Content-Type", "application/octet-stream")
	http.ServeContent(w, r, fi.Name(), fi.ModTime(), file)
}

// fileNotices maps the ?notice= values of the file pages to catalog keys.
var fileNotices = map[string]string{
	"uploaded": "files.notice.uploaded",
	"created":  "files.notice.created",
	"renamed":  "files.notice.renamed",
	"deleted":  "files.notice.deleted",
	"revoked":  "files.notice.revoked",
}

func (h *Handler) filesNotice(lang string, r *http.Request) string {
	if key, ok := fileNotices[r.URL.Query().Get("notice")]; ok {
		return h.t(lang, key)
	}
	return ""
}

// fileError shows the page that explains err, and logs what the user
// cannot fix.
func (h *Handler) fileError(w http.ResponseWriter, v *visit, event string, err error) {
	switch {
	case errors.Is(err, ErrFileNotFound), errors.Is(err, ErrFolderDenied):
		h.renderMessage(w, v, http.StatusNotFound, "files.error.title", "files.error.not_found", "/files/home/")
	case errors.Is(err, ErrFileExists):
		h.renderMessage(w, v, http.StatusConflict, "files.error.title", "files.error.exists", "/files/home/")
	case errors.Is(err, ErrInvalidName):
		h.renderMessage(w, v, http.StatusBadRequest, "files.error.title", "files.error.invalid_name", "/files/home/")
	case errors.Is(err, ErrQuotaExceeded):
		h.renderMessage(w, v, http.StatusInsufficientStorage, "files.error.title", "files.error.quota", "/files/home/")
	case errors.Is(err, ErrUploadRejected):
		h.renderMessage(w, v, http.StatusForbidden, "files.error.title", "files.error.upload_rejected", "")
	case errors.Is(err, ErrShareNotFound):
		h.renderMessage(w, v, http.StatusNotFound, "share.not_found.title", "share.not_found", "")
	default:
		h.internalError(w, v, event, err)
	}
}

// backTo redirects to the listing of dir with a notice.
func backTo(w http.ResponseWriter, r *http.Request, folder, dir, notice string) {
	http.Redirect(w, r, folderHref(folder, dir, true)+"?notice="+notice, http.StatusSeeOther)
}

func (h *Handler) filesMkdir(w http.ResponseWriter, r *http.Request) {
	v, user := filesVisit(w, r)
	if v == nil {
		return
	}
	folder, dir := r.PathValue("folder"), strings.Trim(r.PostForm.Get("dir"), "/")
	name := strings.TrimSpace(r.PostForm.Get("name"))
	if strings.Contains(name, "/") {
		h.fileError(w, v, "creating folder", ErrInvalidName)
		return
	}
	if err := h.files.MakeFolder(r.Context(), user, folder, path.Join(dir, name)); err != nil {
		h.fileError(w, v, "creating folder", err)
		return
	}
	backTo(w, r, folder, dir, "created")
}

func (h *Handler) filesRename(w http.ResponseWriter, r *http.Request) {
	v, user := filesVisit(w, r)
	if v == nil {
		return
	}
	folder, p := r.PathValue("folder"), strings.Trim(r.PostForm.Get("path"), "/")
	if err := h.files.RenameFile(r.Context(), user, folder, p, strings.TrimSpace(r.PostForm.Get("name"))); err != nil {
		h.fileError(w, v, "renaming file", err)
		return
	}
	h.log.Info("file renamed", "user", user.Name, "folder", folder)
	backTo(w, r, folder, parentDir(p), "renamed")
}

func (h *Handler) filesDelete(w http.ResponseWriter, r *http.Request) {
	v, user := filesVisit(w, r)
	if v == nil {
		return
	}
	folder, p := r.PathValue("folder"), strings.Trim(r.PostForm.Get("path"), "/")
	if err := h.files.DeleteFile(r.Context(), user, folder, p); err != nil {
		h.fileError(w, v, "deleting file", err)
		return
	}
	h.log.Info("file deleted", "user", user.Name, "folder", folder)
	backTo(w, r, folder, parentDir(p), "deleted")
}

func parentDir(p string) string {
	if d := path.Dir(p); d != "." {
		return d
	}
	return ""
}

// filesUpload streams the files of an upload form to the store. The CSRF
// field must come first, as browsers send the fields in form order.
func (h *Handler) filesUpload(w http.ResponseWriter, r *http.Request) {
	v, user := filesVisit(w, r)
	if v == nil {
		return
	}
	folder, dir := r.PathValue("folder"), strings.Trim(r.URL.Query().Get("dir"), "/")
	parts, ok := h.uploadParts(w, r, v)
	if !ok {
		return
	}
	n, err := receiveFiles(parts, func(name string, body io.Reader) error {
		return h.files.UploadFile(r.Context(), user, folder, path.Join(dir, name), body)
	})
	if err != nil {
		h.fileError(w, v, "storing upload", err)
		return
	}
	h.log.Info("files uploaded", "user", user.Name, "folder", folder, "files", n)
	backTo(w, r, folder, dir, "uploaded")
}

// uploadParts checks that r is a multipart form whose first field is a
// valid CSRF token and returns the reader of the remaining parts.
func (h *Handler) uploadParts(w http.ResponseWriter, r *http.Request, v *visit) (*multipart.Reader, bool) {
	if !h.isFileUpload(r) {
		h.renderMessage(w, v, http.StatusBadRequest, "error.bad_form.title", "error.bad_request", "")
		return nil, false
	}
	rc := http.NewResponseController(w)
	rc.SetReadDeadline(time.Now().Add(fileUploadTimeout))
	rc.SetWriteDeadline(time.Now().Add(fileUploadTimeout))

	mr, err := r.MultipartReader()
	if err != nil {
		h.renderMessage(w, v, http.StatusBadRequest, "error.bad_form.title", "error.bad_request", "")
		return nil, false
	}
	part, err := mr.NextPart()
	if err != nil || part.FormName() != "csrf" {
		h.renderMessage(w, v, http.StatusForbidden, "error.csrf.title", "error.csrf", "")
		return nil, false
	}
	token, _ := io.ReadAll(io.LimitReader(part, maxCSRFFieldBytes))
	valid := (v.session != nil && v.session.ValidCSRF(string(token))) ||
		(v.visitor != "" && h.validVisitorCSRF(v.visitor, string(token)))
	if !valid {
		h.log.Info("upload rejected: CSRF token missing or invalid", "source", v.source, "path", r.URL.Path)
		h.renderMessage(w, v, http.StatusForbidden, "error.csrf.title", "error.csrf", "")
		return nil, false
	}
	return mr, true
}

// receiveFiles calls store for each file part and returns how many it
// stored. A form without a file stores none.
func receiveFiles(mr *multipart.Reader, store func(name string, body io.Reader) error) (int, error) {
	n := 0
	for {
		part, err := mr.NextPart()
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, fmt.Errorf("reading upload form: %w", err)
		}
		name := part.FileName()
		if part.FormName() != "file" || name == "" {
			continue
		}
		if err := store(name, part); err != nil {
			return n, err
		}
		n++
	}
}
