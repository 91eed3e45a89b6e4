package imap

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/heimwolke/heimwolke/appliance/mail/store"
	"github.com/heimwolke/heimwolke/packages/accounts"
)

// session is one IMAP connection. imapserver calls its methods from one
// goroutine, except Idle's update writes and loginTimedOut.
type session struct {
	srv  *Server
	conn *imapserver.Conn
	addr netip.Addr

	// mu guards the login fields against loginTimedOut and the
	// checkLogin calls of watchLogin, and selected between Idle and Close.
	mu            sync.Mutex
	login         string // empty until Login succeeds
	userID        int64
	appPasswordID int64     // the app password that Login accepted
	loginChecked  time.Time // last time checkLogin asked the accounts store
	revoked       bool      // checkLogin found the login revoked and sent BYE
	loginTimer    *time.Timer

	selected *selection
}

// selection is the selected mailbox of a session.
type selection struct {
	mailbox  store.Mailbox
	live     *liveMailbox
	tracker  *imapserver.SessionTracker
	readOnly bool
}

var _ imapserver.SessionIMAP4rev2 = (*session)(nil)
var _ imapserver.SessionAppendLimit = (*session)(nil)

func (sess *session) ctx() context.Context { return context.Background() }

func (sess *session) loginTimedOut() {
	sess.mu.Lock()
	defer sess.mu.Unlock()
	if sess.login == "" {
		sess.conn.Bye("Login timed out")
	}
}

// Close releases the connection's counts and selected mailbox.
func (sess *session) Close() error {
	sess.loginTimer.Stop()
	// imapserver v2.0.0-beta.9 does not wait for Idle to return when the
	// connection fails during IDLE, so Close and Idle share mu.
	sess.mu.Lock()
	selected := sess.selected
	sess.selected = nil
	login := sess.login
	sess.mu.Unlock()
	if selected != nil {
		sess.srv.closeLive(selected.live, selected.tracker)
	}
	if login != "" {
		sess.srv.releaseUser(login)
	}
	sess.srv.releaseAddr(sess.addr)
	return nil
}

// Login checks an app password with the mail scope. The failure counting
// and throttling happen in accounts.CheckAppPassword. The session keeps
// the app password's id for checkLogin.
func (sess *session) Login(username, password string) error {
	// Mail clients often send the whole address. Only the local part names
	// the account, and the app password proves it.
	name, _, _ := strings.Cut(username, "@")
	u, appPasswordID, err := sess.srv.opts.Accounts.CheckAppPasswordID(sess.ctx(), name, password, sess.addr, "imap", accounts.ScopeMail)
	switch {
	case errors.Is(err, accounts.ErrBadCredentials):
		return imapserver.ErrAuthFailed
	case errors.Is(err, accounts.ErrThrottled):
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable, Text: "Too many failed logins, try again later"}
	case err != nil:
		sess.srv.logger.Error("imap: checking login", "remote_addr", sess.addr.String(), "err", err)
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeServerBug, Text: "Login failed on the server"}
	}

	if !sess.srv.acquireUser(u.Name) {
		if sess.srv.rejectLog.Allow("user:" + u.Name) {
			sess.srv.logger.Info("imap: too many connections of user; further rejections of this user within a minute are not logged", "user", u.Name, "remote_addr", sess.addr.String())
		}
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeLimit, Text: "Too many connections for this account"}
	}
	if err := sess.srv.opts.Store.EnsureUser(sess.ctx(), u.Name); err != nil {
		sess.srv.releaseUser(u.Name)
		return sess.srv.storeError(err)
	}
	sess.mu.Lock()
	sess.login, sess.userID, sess.appPasswordID = u.Name, u.ID, appPasswordID
	sess.loginChecked = time.Now()
	sess.mu.Unlock()
	sess.loginTimer.Stop()
	sess.srv.logger.Debug("imap: login", "user", u.Name, "remote_addr", sess.addr.String())
	return nil
}

// storeError turns a store error into the IMAP response for the client. Only
// the response code and a fixed text leave the server.
func (s *Server) storeError(err error) error {
	no := func(code imap.ResponseCode, text string) error {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: code, Text: text}
	}
	switch {
	case errors.Is(err, store.ErrNoMailbox):
		return no(imap.ResponseCodeNonExistent, "No such mailbox")
	case errors.Is(err, store.ErrMailboxExists):
		return no(imap.ResponseCodeAlreadyExists, "Mailbox already exists")
	case errors.Is(err, store.ErrQuotaExceeded):
		return no(imap.ResponseCodeOverQuota, "Mail quota exceeded")
	case errors.Is(err, store.ErrTooBig):
		return no(imap.ResponseCodeTooBig, "Message too big")
	case errors.Is(err, store.ErrInvalidLevel):
		return no(imap.ResponseCodeCannot, `Invalid mailbox name: no level may be empty, "." or ".."`)
	case errors.Is(err, store.ErrInvalidName):
		return no(imap.ResponseCodeCannot, "Invalid mailbox name or operation")
	}
	s.logger.Error("imap: store operation failed", "err", err)
	return no(imap.ResponseCodeServerBug, "Internal server error")
}

// tryCreate maps a missing destination to TRYCREATE (RFC 9051 section
// 6.3.12), which lets clients create the mailbox and retry.
func (s *Server) tryCreate(err error) error {
	if errors.Is(err, store.ErrNoMailbox) {
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTryCreate, Text: "No such mailbox"}
	}
	return s.storeError(err)
}

func (sess *session) Namespace() (*imap.NamespaceData, error) {
	return &imap.NamespaceData{
		Personal: []imap.NamespaceDescriptor{{Prefix: "", Delim: store.Delimiter}},
	}, nil
}

func (sess *session) AppendLimit() uint32 {
	return uint32(min(sess.srv.opts.Store.MaxMessageSize(), 1<<32-1))
}

func (sess *session) Create(name string, options *imap.CreateOptions) error {
	if err := sess.checkLogin(); err != nil {
		return err
	}
	name = strings.TrimSuffix(name, string(store.Delimiter)) // RFC 9051 section 6.3.4
	specialUse := ""
	if options != nil && len(options.SpecialUse) > 0 {
		if len(options.SpecialUse) > 1 {
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: codeUseAttr, Text: "Only one special-use attribute per mailbox"}
		}
		specialUse = string(options.SpecialUse[0])
		switch specialUse {
		case store.SpecialSent, store.SpecialDrafts, store.SpecialTrash, store.SpecialJunk, store.SpecialArchive:
		default:
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: codeUseAttr, Text: "Unsupported special-use attribute"}
		}
	}
	if err := sess.srv.opts.Store.CreateMailbox(sess.ctx(), sess.login, name, specialUse); err != nil {
		return sess.srv.storeError(err)
	}
	return nil
}

func (sess *session) Delete(name string) error {
	if err := sess.checkLogin(); err != nil {
		return err
	}
	if err := sess.srv.opts.Store.DeleteMailbox(sess.ctx(), sess.login, name); err != nil {
		return sess.srv.storeError(err)
	}
	return nil
}

func (sess *session) Rename(oldName, newName string, _ *imap.RenameOptions) error {
	if err := sess.checkLogin(); err != nil {
		return err
	}
	if err := sess.srv.opts.Store.RenameMailbox(sess.ctx(), sess.login, oldName, newName); err != nil {
		return sess.srv.storeError(err)
	}
	return nil
}

func (sess *session) Subscribe(name string) error {
	if err := sess.checkLogin(); err != nil {
		return err
	}
	if err := sess.srv.opts.Store.SetSubscribed(sess.ctx(), sess.login, name, true); err != nil {
		return sess.srv.storeError(err)
	}
	return nil
}

func (sess *session) Unsubscribe(name string) error {
	if err := sess.checkLogin(); err != nil {
		return err
	}
	if err := sess.srv.opts.Store.SetSubscribed(sess.ctx(), sess.login, name, false); err != nil {
		return sess.srv.storeError(err)
	}
	return nil
}

func (sess *session) Status(name string, options *imap.StatusOptions) (*imap.StatusData, error) {
	if err := sess.checkLogin(); err != nil {
		return nil, err
	}
	m, err := sess.srv.opts.Store.Mailbox(sess.ctx(), sess.login, name)
	if err != nil {
		return nil, sess.srv.storeError(err)
	}
	return sess.statusData(m, options)
}

func (sess *session) statusData(m *store.Mailbox, options *imap.StatusOptions) (*imap.StatusData, error) {
	st, err := sess.srv.opts.Store.MailboxStatus(sess.ctx(), m.ID)
	if err != nil {
		return nil, sess.srv.storeError(err)
	}
	data := &imap.StatusData{Mailbox: m.Name}
	if options.NumMessages {
		data.NumMessages = &st.Messages
	}
	if options.UIDNext {
		data.UIDNext = imap.UID(st.UIDNext)
	}
	if options.UIDValidity {
		data.UIDValidity = st.UIDValidity
	}
	if options.NumUnseen {
		data.NumUnseen = &st.Unseen
	}
	if options.NumDeleted {
		data.NumDeleted = &st.Deleted
	}
	if options.Size {
		data.Size = &st.Size
	}
	if options.NumRecent {
		var zero uint32
		data.NumRecent = &zero
	}
	if options.AppendLimit {
		limit := sess.AppendLimit()
		data.AppendLimit = &limit
	}
	return data, nil
}

func (sess *session) Append(name string, r imap.LiteralReader, options *imap.AppendOptions) (*imap.AppendData, error) {
	if err := sess.checkLogin(); err != nil {
		return nil, err
	}
	validity, uid, err := sess.srv.opts.Store.Append(sess.ctx(), sess.login, name, r, storeFlags(options.Flags), options.Time, nil)
	if err != nil {
		return nil, sess.srv.tryCreate(err)
	}
	return &imap.AppendData{UID: imap.UID(uid), UIDValidity: validity}, nil
}

func (sess *session) Select(name string, options *imap.SelectOptions) (*imap.SelectData, error) {
	if err := sess.checkLogin(); err != nil {
		return nil, err
	}
	m, err := sess.srv.opts.Store.Mailbox(sess.ctx(), sess.login, name)
	if err != nil {
		return nil, sess.srv.storeError(err)
	}
	if sess.selected != nil {
		sess.Unselect()
	}
	lm, tracker, err := sess.srv.openLive(sess.ctx(), m.ID)
	if err != nil {
		return nil, sess.srv.storeError(err)
	}
	sess.selected = &selection{mailbox: *m, live: lm, tracker: tracker, readOnly: options.ReadOnly}

	st, err := sess.srv.opts.Store.MailboxStatus(sess.ctx(), m.ID)
	if err != nil {
		sess.Unselect()
		return nil, sess.srv.storeError(err)
	}
	lm.mu.Lock()
	numMessages := uint32(len(lm.uids))
	lm.mu.Unlock()

	flags := []imap.Flag{imap.FlagSeen, imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagDraft}
	permanent := append(flags, imap.FlagWildcard)
	if options.ReadOnly {
		permanent = nil
	}
	return &imap.SelectData{
		Flags:          flags,
		PermanentFlags: permanent,
		NumMessages:    numMessages,
		UIDNext:        imap.UID(st.UIDNext),
		UIDValidity:    st.UIDValidity,
	}, nil
}

func (sess *session) Unselect() error {
	if sess.selected != nil {
		sess.srv.closeLive(sess.selected.live, sess.selected.tracker)
		sess.selected = nil
	}
	return nil
}

func (sess *session) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	if err := sess.checkLogin(); err != nil {
		return err
	}
	if sess.selected == nil {
		return nil
	}
	return sess.selected.tracker.Poll(w, allowExpunge)
}

func (sess *session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	if err := sess.checkLogin(); err != nil {
		return err
	}
	go sess.watchLogin(stop)
	sess.mu.Lock()
	selected := sess.selected
	sess.mu.Unlock()
	if selected == nil {
		<-stop
		return nil
	}
	return selected.tracker.Idle(w, stop)
}

// codeUseAttr is the USEATTR response code of RFC 6154 section 6.
const codeUseAttr imap.ResponseCode = "USEATTR"
