package webui

import (
	"mime"
	"net/http"
	"strings"

	"github.com/heimwolke/heimwolke/appliance/mail/store"
)

const mailAccountPath = "/account/mail"

// mailAccountData is the content of /account/mail.
type mailAccountData struct {
	Mailboxes []store.Mailbox
}

// requireMailExport returns the visit of a logged-in user, or writes the
// login redirect or, without MailServices.Export, the 404 page and
// returns nil.
func (h *Handler) requireMailExport(w http.ResponseWriter, r *http.Request) *visit {
	v := requireSession(w, r)
	if v != nil && h.mail.Export == nil {
		h.notFound(w, r)
		return nil
	}
	return v
}

func (h *Handler) mailAccountPage(w http.ResponseWriter, r *http.Request) {
	v := h.requireMailExport(w, r)
	if v == nil {
		return
	}
	boxes, err := h.mail.Export.Mailboxes(r.Context(), v.session.User.Name)
	if err != nil {
		h.internalError(w, v, "listing mail folders", err)
		return
	}
	p := h.newPage(v, "mailui.account.title")
	p.Data = mailAccountData{Mailboxes: boxes}
	h.render(w, http.StatusOK, "mail_account", p)
}

// exportMailbox sends the folder named by ?folder= as an mbox file
// (application/mbox, RFC 4155). A folder that the user lacks is not
// found.
func (h *Handler) exportMailbox(w http.ResponseWriter, r *http.Request) {
	v := h.requireMailExport(w, r)
	if v == nil {
		return
	}
	login := v.session.User.Name
	folder := r.URL.Query().Get("folder")
	boxes, err := h.mail.Export.Mailboxes(r.Context(), login)
	if err != nil {
		h.internalError(w, v, "listing mail folders", err)
		return
	}
	if !hasMailbox(boxes, folder) {
		h.notFound(w, r)
		return
	}

	header := w.Header()
	header.Set("Content-Type", "application/mbox")
	header.Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": mboxFileName(folder)}))
	header.Set("Cache-Control", "no-store")
	// The status line is sent with the first bytes, so a failure after
	// them can only cut the download short and log the error.
	if err := h.mail.Export.ExportMbox(r.Context(), login, folder, w); err != nil {
		h.log.Error("exporting mail folder", "user", login, "folder", folder, "source", v.source, "err", err)
		return
	}
	h.log.Info("mail folder exported", "user", login, "folder", folder, "source", v.source)
}

func hasMailbox(boxes []store.Mailbox, name string) bool {
	for _, b := range boxes {
		if b.Name == name {
			return true
		}
	}
	return false
}

// mboxFileName returns the download file name of a folder, with the
// hierarchy delimiter and other characters that file systems reject
// replaced by "-". mime.FormatMediaType encodes non-ASCII names as
// RFC 2231 requires.
func mboxFileName(folder string) string {
	name := strings.Map(func(r rune) rune {
		if r < 0x20 || strings.ContainsRune(`/\:*?"<>|`, r) {
			return '-'
		}
		return r
	}, folder)
	return name + ".mbox"
}
