package files

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// DeleteUser removes what the files service keeps of the member login:
// first every share link that they created, in any folder, and every link
// into their home, so that no link opens or accepts uploads any more. Then
// it removes their home folder with its dead properties, locks and usage
// counter. Files that they put into the shared folder stay, because they
// belong to the household. Calling it again after a failure finishes the
// removal.
//
// Call it after the member's logins are revoked and before their account
// is deleted. A request of theirs that is still running when it starts
// may fail, and its upload is removed with the folder.
func (h *Handler) DeleteUser(ctx context.Context, login string) error {
	if err := checkHomeLogin(login); err != nil {
		return fmt.Errorf("deleting files of %q: %w", login, err)
	}
	key := "home/" + login

	links, err := h.revokeUserLinks(ctx, login, key)
	if err != nil {
		return fmt.Errorf("deleting files of %q: %w", login, err)
	}
	if err := h.removeHome(login, key); err != nil {
		return fmt.Errorf("deleting files of %q: %w", login, err)
	}
	h.log.Info("files of deleted user removed", "user", login, "share_links", links)
	return nil
}

// checkHomeLogin rejects a login that would name a folder other than one
// home: empty, ".", "..", or with a path separator.
func checkHomeLogin(login string) error {
	if login == "" || login == "." || login == ".." || strings.ContainsAny(login, `/\`) {
		return fmt.Errorf("invalid login name %q: want the login name of an account", login)
	}
	return nil
}

// revokeUserLinks deletes the share links of login and the links into the
// folder key, together with the dead properties of key, in one
// transaction. It returns how many links it deleted.
func (h *Handler) revokeUserLinks(ctx context.Context, login, key string) (int64, error) {
	tx, err := h.shares.db.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("revoking share links: %w", err)
	}
	defer tx.Rollback()

	res, err := tx.ExecContext(ctx, `DELETE FROM files_shares WHERE owner = ? OR root = ?`, login, key)
	if err != nil {
		return 0, fmt.Errorf("revoking share links: %w", err)
	}
	links, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("revoking share links: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM files_props WHERE root = ?`, key); err != nil {
		return 0, fmt.Errorf("deleting dead properties: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("revoking share links: %w", err)
	}
	return links, nil
}

// removeHome moves the home folder of login out of the way and removes it.
// The move comes first, so that a crash during the removal leaves no
// partial home behind for a new member of the same name. The folder's
// name for the move is fixed, so a later call finds what an interrupted
// one left. Login names start with a letter or digit, so the dot-led name
// never collides with a home.
func (h *Handler) removeHome(login, key string) error {
	home := filepath.Join(h.dataDir, "home", login)
	trash := filepath.Join(h.dataDir, "home", ".deleted-"+login)

	if err := os.RemoveAll(trash); err != nil {
		return fmt.Errorf("removing the rest of an earlier deletion: %w", err)
	}
	err := os.Rename(home, trash)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("moving home folder aside: %w", err)
	}

	// The locks and the usage counter belong to the old folder. A new
	// member of the same name gets fresh ones.
	h.mu.Lock()
	delete(h.roots, key)
	h.mu.Unlock()

	if err := os.RemoveAll(trash); err != nil {
		return fmt.Errorf("removing home folder: %w", err)
	}
	return nil
}
