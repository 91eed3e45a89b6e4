package imap

import (
	"time"

	"github.com/emersion/go-imap/v2"
)

// errLoginRevoked fails the command during which checkLogin ended the
// session. The client has already received the untagged BYE.
var errLoginRevoked = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeAuthorizationFailed,
	Text: "Login revoked"}

// checkLogin ends the session with BYE when its app password was revoked
// or its user deleted since the login. It queries the accounts store at most
// once per LoginCheckInterval and returns nil in between, so a session
// may outlive its login by up to that interval. Commands call it before
// they touch the store.
func (sess *session) checkLogin() error {
	sess.mu.Lock()
	if sess.revoked {
		sess.mu.Unlock()
		return errLoginRevoked
	}
	now := time.Now()
	if sess.login == "" || now.Sub(sess.loginChecked) < sess.srv.opts.LoginCheckInterval {
		sess.mu.Unlock()
		return nil
	}
	sess.loginChecked = now
	login, userID, appPasswordID := sess.login, sess.userID, sess.appPasswordID
	sess.mu.Unlock()

	active, err := sess.srv.opts.Accounts.AppPasswordActive(sess.ctx(), userID, appPasswordID)
	if err != nil {
		// NOTE: the session stays open while the accounts database fails,
		// and the next check after the interval tries again.
		sess.srv.logger.Error("imap: checking login", "user", login, "remote_addr", sess.addr.String(), "err", err)
		return nil
	}
	if active {
		return nil
	}

	sess.mu.Lock()
	sess.revoked = true
	sess.mu.Unlock()
	sess.srv.logger.Info("imap: login revoked, session ended", "user", login, "app_password_id", appPasswordID,
		"remote_addr", sess.addr.String())
	sess.conn.Bye("Login revoked: the app password or the account was deleted")
	return errLoginRevoked
}

// watchLogin calls checkLogin every LoginCheckInterval until stop is
// closed or the session ends, because a client in IDLE sends no commands
// that would check it.
func (sess *session) watchLogin(stop <-chan struct{}) {
	ticker := time.NewTicker(sess.srv.opts.LoginCheckInterval)
	defer ticker.Stop()
	for {
		select {
		case <-stop:
			return
		case <-ticker.C:
			if sess.checkLogin() != nil {
				return
			}
		}
	}
}
