package webui

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/heimwolke/heimwolke/packages/accounts"
)

// maxShareDays caps the expiry that the share form accepts.
const maxShareDays = 3650

// shareCreatedData is the content of the page that shows a new link once.
type shareCreatedData struct {
	URL, Name  string
	BackHref   string
	HasExpiry  bool
	Expires    time.Time
	Uploads    bool
	Protected  bool
	SharesHref string
}

// filesShare creates a share link and shows its URL, which the box
// cannot show again: it stores only the token's hash.
func (h *Handler) filesShare(w http.ResponseWriter, r *http.Request) {
	v, user := filesVisit(w, r)
	if v == nil {
		return
	}
	folder, p := r.PathValue("folder"), strings.Trim(r.PostForm.Get("path"), "/")
	link := NewShareLink{
		Folder:   folder,
		Path:     p,
		Password: r.PostForm.Get("password"),
		Uploads:  r.PostForm.Get("uploads") == "on",
	}
	if days := strings.TrimSpace(r.PostForm.Get("days")); days != "" && days != "0" {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > maxShareDays {
			h.renderMessage(w, v, http.StatusBadRequest, "files.error.title", "files.error.days", folderHref(folder, parentDir(p), true))
			return
		}
		link.Expires = h.now().Add(time.Duration(n) * 24 * time.Hour)
	}
	token, err := h.files.CreateShareLink(r.Context(), user, link)
	if err != nil {
		h.fileError(w, v, "creating share link", err)
		return
	}
	h.log.Info("share link created", "user", user.Name, "folder", folder, "uploads", link.Uploads, "password", link.Password != "")

	pg := h.newPage(v, "files.share.created.title")
	pg.Data = shareCreatedData{
		URL:        h.shareURL(r, token),
		Name:       path.Base("/" + p),
		BackHref:   folderHref(folder, parentDir(p), true),
		HasExpiry:  !link.Expires.IsZero(),
		Expires:    link.Expires,
		Uploads:    link.Uploads,
		Protected:  link.Password != "",
		SharesHref: "/files/shares",
	}
	h.render(w, http.StatusOK, "files_link", pg)
}

// shareURL returns the public URL of a link: on the box's domain once it
// has one, else on the host that the request used.
func (h *Handler) shareURL(r *http.Request, token string) string {
	scheme := "https"
	if r.TLS == nil {
		scheme = "http"
	}
	return scheme + "://" + r.Host + "/s/" + token
}

// shareRow is a link in the list of share links.
type shareListRow struct {
	ShareLink
	Target string
}

func (h *Handler) sharesPage(w http.ResponseWriter, r *http.Request) {
	v, user := filesVisit(w, r)
	if v == nil {
		return
	}
	links, err := h.files.ShareLinks(r.Context(), user)
	if err != nil {
		h.internalError(w, v, "reading share links", err)
		return
	}
	rows := make([]shareListRow, 0, len(links))
	for _, l := range links {
		target := h.t(v.lang, "files.folder."+l.Folder)
		if l.Path != "" {
			target += " / " + l.Path
		}
		rows = append(rows, shareListRow{ShareLink: l, Target: target})
	}
	pg := h.newPage(v, "files.shares.title")
	pg.Notice = h.filesNotice(v.lang, r)
	pg.Data = struct {
		Links   []shareListRow
		IsOwner bool
	}{rows, user.Role == accounts.RoleOwner}
	h.render(w, http.StatusOK, "files_shares", pg)
}

func (h *Handler) revokeShare(w http.ResponseWriter, r *http.Request) {
	v, user := filesVisit(w, r)
	if v == nil {
		return
	}
	id, err := strconv.ParseInt(r.PathValue("id"), 10, 64)
	if err != nil {
		h.notFound(w, r)
		return
	}
	if err := h.files.RevokeShareLink(r.Context(), user, id); err != nil {
		h.fileError(w, v, "revoking share link", err)
		return
	}
	h.log.Info("share link revoked", "user", user.Name, "share_id", id)
	http.Redirect(w, r, "/files/shares?notice=revoked", http.StatusSeeOther)
}

// The public pages of a share link, reachable without a login.
func (h *Handler) registerShareRoutes() {
	h.mux.HandleFunc("GET /s/{token}", h.sharePage)
	h.mux.HandleFunc("GET /s/{token}/{path...}", h.shareBrowse)
	h.mux.HandleFunc("POST /s/{token}/unlock", h.shareUnlock)
	h.mux.HandleFunc("POST /s/{token}/upload", h.shareUpload)
}

// shareData is the content of the public share page.
type shareData struct {
	Token    string
	Name     string
	Dir      bool
	Size     string
	Download string
	Path     string
	Crumbs   []crumb
	Entries  []fileRow
	Uploads  bool
	Upload   string // the upload form's action
	Password bool   // the page shows the form for the link's password
	Expires  time.Time
}

// shareCookieName and shareCookieValue make the cookie that remembers an
// entered link password: an HMAC of the token, which only the box can
// compute.
func shareCookieName(link *ShareLink) string {
	return "heimwolke_share_" + strconv.FormatInt(link.ID, 10)
}

func (h *Handler) shareCookieValue(token string) string {
	mac := hmac.New(sha256.New, h.csrfKey)
	mac.Write([]byte("share\x00" + token))
	return base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
}

// openShare returns the link of the request's token, or writes the
// not-found page or the password form and returns nil.
func (h *Handler) openShare(w http.ResponseWriter, r *http.Request) (*visit, *ShareLink) {
	v := visitOf(r)
	token := r.PathValue("token")
	link, err := h.files.OpenShareLink(r.Context(), token)
	if err != nil {
		if !errors.Is(err, ErrShareNotFound) {
			h.internalError(w, v, "opening share link", err)
			return nil, nil
		}
		h.renderMessage(w, v, http.StatusNotFound, "share.not_found.title", "share.not_found", "")
		return nil, nil
	}
	if link.HasPassword {
		c, err := r.Cookie(shareCookieName(link))
		if err != nil || !hmac.Equal([]byte(c.Value), []byte(h.shareCookieValue(token))) {
			h.renderSharePassword(w, v, token, http.StatusUnauthorized, false)
			return nil, nil
		}
	}
	return v, link
}

func (h *Handler) renderSharePassword(w http.ResponseWriter, v *visit, token string, status int, wrong bool) {
	pg := h.newPage(v, "share.password.title")
	if wrong {
		pg.Errors.add("password", h.t(v.lang, "share.password.wrong"))
	}
	pg.Data = shareData{Token: token, Password: true}
	h.render(w, status, "share", pg)
}

func (h *Handler) shareUnlock(w http.ResponseWriter, r *http.Request) {
	v := visitOf(r)
	token := r.PathValue("token")
	link, err := h.files.OpenShareLink(r.Context(), token)
	if err != nil {
		h.renderMessage(w, v, http.StatusNotFound, "share.not_found.title", "share.not_found", "")
		return
	}
	password := r.PostForm.Get("password")
	err = h.accounts.CheckSecret(r.Context(), fmt.Sprintf("share:%d", link.ID), v.source, v.protocol(), func() bool {
		return h.files.CheckSharePassword(r.Context(), link, password)
	})
	var throttled *accounts.ThrottledError
	switch {
	case errors.As(err, &throttled):
		pg := h.newPage(v, "share.password.title")
		pg.Data = shareData{Token: token, Password: true}
		pg.Errors.add("password", h.t(v.lang, "share.password.throttled", "wait", h.waitText(v.lang, throttled.RetryAfter)))
		w.Header().Set("Retry-After", retryAfter(throttled.RetryAfter))
		h.render(w, http.StatusTooManyRequests, "share", pg)
		return
	case err != nil:
		h.renderSharePassword(w, v, token, http.StatusUnauthorized, true)
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name:     shareCookieName(link),
		Value:    h.shareCookieValue(token),
		Path:     "/s/" + token,
		Secure:   v.tls,
		HttpOnly: true,
		SameSite: http.SameSiteLaxMode,
	})
	http.Redirect(w, r, "/s/"+token, http.StatusSeeOther)
}

// sharePage shows a file link's file, or redirects to a folder link's
// listing.
func (h *Handler) sharePage(w http.ResponseWriter, r *http.Request) {
	v, link := h.openShare(w, r)
	if link == nil {
		return
	}
	token := r.PathValue("token")
	if link.Dir {
		http.Redirect(w, r, "/s/"+token+"/", http.StatusSeeOther)
		return
	}
	file, err := h.files.OpenShareFile(r.Context(), link, "")
	if err != nil {
		h.fileError(w, v, "opening shared file", err)
		return
	}
	defer file.Close()
	fi, err := file.Stat()
	if err != nil {
		h.fileError(w, v, "opening shared file", err)
		return
	}
	pg := h.newPage(v, "share.title")
	pg.Data = shareData{
		Token:    token,
		Name:     fi.Name(),
		Size:     formatSize(v.lang, fi.Size()),
		Download: "/s/" + token + "/" + escapeSegments(fi.Name()),
		Expires:  link.Expires,
	}
	h.render(w, http.StatusOK, "share", pg)
}

// shareBrowse downloads a file link's file, or lists or downloads below a
// folder link.
func (h *Handler) shareBrowse(w http.ResponseWriter, r *http.Request) {
	v, link := h.openShare(w, r)
	if link == nil {
		return
	}
	token := r.PathValue("token")
	p := strings.Trim(r.PathValue("path"), "/")
	if !link.Dir {
		p = ""
	}
	file, err := h.files.OpenShareFile(r.Context(), link, p)
	if err == nil {
		defer file.Close()
		if fi, err := file.Stat(); err == nil {
			serveDownload(w, r, file, fi)
			return
		}
	}
	if !errors.Is(err, ErrFileNotFound) || !link.Dir {
		h.fileError(w, v, "opening shared file", err)
		return
	}

	entries, err := h.files.ListShare(r.Context(), link, p)
	if err != nil {
		h.fileError(w, v, "listing shared folder", err)
		return
	}
	pg := h.newPage(v, "share.title")
	pg.Data = h.shareListing(v, token, link, p, entries)
	if link.Uploads {
		pg.Notice = h.uploadedNotice(v.lang, r)
	}
	w.Header().Set("Content-Security-Policy", filesCSP)
	h.render(w, http.StatusOK, "share", pg)
}

func (h *Handler) shareListing(v *visit, token string, link *ShareLink, dir string, entries []FileEntry) shareData {
	base := "/s/" + token + "/"
	name := path.Base("/" + link.Path)
	if link.Path == "" {
		name = h.t(v.lang, "files.folder."+link.Folder)
	}
	data := shareData{Token: token, Name: name, Dir: true, Path: dir, Uploads: link.Uploads, Expires: link.Expires}
	data.Crumbs = []crumb{{Name: name, Href: base}}
	if dir != "" {
		parts := strings.Split(dir, "/")
		for i, part := range parts {
			data.Crumbs = append(data.Crumbs, crumb{Name: part, Href: base + escapeSegments(strings.Join(parts[:i+1], "/")) + "/"})
		}
	}
	for _, e := range entries {
		p := path.Join(dir, e.Name)
		row := fileRow{Name: e.Name, Path: p, Href: base + escapeSegments(p), Dir: e.Dir, Modified: e.Modified}
		if e.Dir {
			row.Href += "/"
		} else {
			row.Size = formatSize(v.lang, e.Size)
		}
		data.Entries = append(data.Entries, row)
	}
	if link.Uploads {
		data.Upload = "/s/" + token + "/upload"
	}
	return data
}

// shareUpload stores the files of a drop box link's upload form in the
// link's folder; it accepts no sub-folder.
func (h *Handler) shareUpload(w http.ResponseWriter, r *http.Request) {
	v, link := h.openShare(w, r)
	if link == nil {
		return
	}
	if !link.Dir || !link.Uploads {
		h.fileError(w, v, "storing upload", ErrUploadRejected)
		return
	}
	parts, ok := h.uploadParts(w, r, v)
	if !ok {
		return
	}
	n, err := receiveFiles(parts, func(name string, body io.Reader) error {
		return h.files.UploadToShare(r.Context(), link, name, body)
	})
	if err != nil {
		h.fileError(w, v, "storing upload", err)
		return
	}
	h.log.Info("files uploaded to drop box", "share_id", link.ID, "source", v.source, "files", n)
	// 303 to the listing, so that a reload shows the folder instead of
	// sending the files again or requesting GET on the upload path.
	http.Redirect(w, r, "/s/"+r.PathValue("token")+"/?uploaded="+strconv.Itoa(n), http.StatusSeeOther)
}

// uploadedNotice returns the notice on a drop box listing after an upload
// of the ?uploaded= number of files, or "".
func (h *Handler) uploadedNotice(lang string, r *http.Request) string {
	n, err := strconv.Atoi(r.URL.Query().Get("uploaded"))
	if err != nil || n <= 0 {
		return ""
	}
	return h.t(lang, "share.uploaded", "n", n)
}
