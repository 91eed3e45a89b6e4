package imap

import (
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/heimwolke/heimwolke/appliance/mail/store"
)

// List serves LIST and LSUB, with the LIST-EXTENDED selection and return
// options of RFC 5258, SPECIAL-USE (RFC 6154) and LIST-STATUS (RFC 5819).
func (sess *session) List(w *imapserver.ListWriter, ref string, patterns []string, options *imap.ListOptions) error {
	if err := sess.checkLogin(); err != nil {
		return err
	}
	if len(patterns) == 0 {
		// RFC 9051 section 6.3.9: an empty pattern requests the delimiter.
		// imapserver drops empty patterns, so none are left.
		return w.WriteList(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: store.Delimiter})
	}

	mailboxes, err := sess.srv.opts.Store.Mailboxes(sess.ctx(), sess.login)
	if err != nil {
		return sess.srv.storeError(err)
	}
	for i := range mailboxes {
		m := &mailboxes[i]
		if !matchAny(m.Name, ref, patterns) {
			continue
		}
		data := sess.listData(m, mailboxes, options)
		if data == nil {
			continue
		}
		if options.ReturnStatus != nil {
			st, err := sess.statusData(m, options.ReturnStatus)
			if err != nil {
				return err
			}
			data.Status = st
		}
		if err := w.WriteList(data); err != nil {
			return err
		}
	}
	return nil
}

func matchAny(name, ref string, patterns []string) bool {
	for _, p := range patterns {
		if imapserver.MatchList(name, store.Delimiter, ref, p) {
			return true
		}
		// The name INBOX matches case-insensitively (RFC 9051 section 5.1).
		if name == store.Inbox && imapserver.MatchList(name, store.Delimiter, ref, strings.ToUpper(p)) {
			return true
		}
	}
	return false
}

// listData returns the LIST response of m, or nil when the selection
// options leave it out.
func (sess *session) listData(m *store.Mailbox, all []store.Mailbox, options *imap.ListOptions) *imap.ListData {
	data := &imap.ListData{Mailbox: m.Name, Delim: store.Delimiter}
	children, subscribedChild := childInfo(m.Name, all)
	if children {
		data.Attrs = append(data.Attrs, imap.MailboxAttrHasChildren)
	} else {
		data.Attrs = append(data.Attrs, imap.MailboxAttrHasNoChildren)
	}
	if m.Subscribed {
		data.Attrs = append(data.Attrs, imap.MailboxAttrSubscribed)
	}
	if m.SpecialUse != "" {
		data.Attrs = append(data.Attrs, imap.MailboxAttr(m.SpecialUse))
	}

	if options.SelectSpecialUse && m.SpecialUse == "" {
		return nil
	}
	if options.SelectSubscribed && !m.Subscribed {
		if !options.SelectRecursiveMatch || !subscribedChild {
			return nil
		}
		// RFC 5258 section 3.5: a parent of a subscribed mailbox is
		// listed with CHILDINFO.
		data.ChildInfo = &imap.ListDataChildInfo{Subscribed: true}
	}
	return data
}

func childInfo(name string, all []store.Mailbox) (children, subscribed bool) {
	prefix := name + string(store.Delimiter)
	for _, m := range all {
		if strings.HasPrefix(m.Name, prefix) {
			children = true
			if m.Subscribed {
				subscribed = true
			}
		}
	}
	return children, subscribed
}
