package webui

import (
	"context"
	"io"

	"github.com/heimwolke/heimwolke/appliance/mail/aliases"
	"github.com/heimwolke/heimwolke/appliance/mail/queue"
	"github.com/heimwolke/heimwolke/appliance/mail/store"
)

// MailServices are the mail server's parts that the mail pages show and
// change. Each nil field turns off its part of the pages.
type MailServices struct {
	// Aliases stores the aliases and catch-alls that the owner edits on
	// /admin/mail. Nil means that /admin/mail is not found.
	Aliases MailAliases

	// Queue lists the outgoing mail that waits for delivery, shown on
	// /admin/mail. Nil means that the page leaves out the queue.
	Queue MailQueue

	// Export writes a member's folders as mbox files for /account/mail.
	// Nil means that /account/mail is not found.
	Export MailExport
}

// MailAliases stores the mail aliases and catch-alls; *aliases.Directory
// implements it. Add and SetCatchAll return errors that wrap
// aliases.ErrInvalidAddress, aliases.ErrExists or aliases.ErrUnknownLogin
// for input that the owner must fix.
type MailAliases interface {
	Domains() []string
	List(ctx context.Context) ([]aliases.Alias, error)
	Add(ctx context.Context, address, login string) error
	Remove(ctx context.Context, address string) error
	CatchAlls(ctx context.Context) ([]aliases.CatchAll, error)
	SetCatchAll(ctx context.Context, domain, login string) error
	ClearCatchAll(ctx context.Context, domain string) error
}

// MailQueue lists the outgoing mail queue; *queue.Queue implements it.
type MailQueue interface {
	Entries(ctx context.Context) ([]queue.Entry, error)
}

// MailExport lists a user's mail folders and writes one as mbox;
// *store.Store implements it.
type MailExport interface {
	Mailboxes(ctx context.Context, login string) ([]store.Mailbox, error)
	ExportMbox(ctx context.Context, login, folder string, w io.Writer) error
}

// registerMailRoutes adds the owner's mail page and the member's export
// page.
func (h *Handler) registerMailRoutes() {
	h.mux.HandleFunc("GET "+mailAdminPath, h.mailAdminPage)
	h.mux.HandleFunc("POST "+mailAdminPath+"/aliases", h.addMailAlias)
	h.mux.HandleFunc("POST "+mailAdminPath+"/aliases/remove", h.removeMailAlias)
	h.mux.HandleFunc("POST "+mailAdminPath+"/catch-all", h.setMailCatchAll)

	h.mux.HandleFunc("GET "+mailAccountPath, h.mailAccountPage)
	h.mux.HandleFunc("GET "+mailAccountPath+"/export", h.exportMailbox)
}
