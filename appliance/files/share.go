package files

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"database/sql"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/crypto/argon2"

	"github.com/heimwolke/heimwolke/appliance/webui"
	"github.com/heimwolke/heimwolke/packages/accounts"
)

// shareStore keeps the share links: public URLs for a file or folder,
// optionally with a password and an expiry. Only the SHA-256 of a link's
// token is stored, so a copy of the database opens no link.
type shareStore struct {
	db  *sql.DB
	now func() time.Time

	// argonMemoryKiB is the memory cost of link password hashes.
	argonMemoryKiB uint32
}

// Argon2id cost of link passwords, as the accounts package hashes the
// users' passwords: 2 passes, 2 lanes, and 64 MiB unless Options set less.
const (
	argonTime    = 2
	argonThreads = 2
	argonKeyLen  = 32
)

// newShareToken returns 256 random bits in base64url, for the link URL.
func newShareToken() string {
	var b [32]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func tokenHash(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// hashSharePassword returns the PHC string of an argon2id hash.
func (s *shareStore) hashSharePassword(password string) string {
	var salt [16]byte
	rand.Read(salt[:])
	key := argon2.IDKey([]byte(password), salt[:], argonTime, s.argonMemoryKiB, argonThreads, argonKeyLen)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, s.argonMemoryKiB, argonTime, argonThreads,
		base64.RawStdEncoding.EncodeToString(salt[:]), base64.RawStdEncoding.EncodeToString(key))
}

// checkSharePassword compares password with a PHC string that
// hashSharePassword wrote.
func checkSharePassword(phc, password string) bool {
	parts := strings.Split(phc, "$")
	if len(parts) != 6 || parts[1] != "argon2id" {
		return false
	}
	var memory, passes uint32
	var threads uint8
	if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &memory, &passes, &threads); err != nil {
		return false
	}
	salt, err1 := base64.RawStdEncoding.DecodeString(parts[4])
	want, err2 := base64.RawStdEncoding.DecodeString(parts[5])
	if err1 != nil || err2 != nil || len(want) == 0 {
		return false
	}
	got := argon2.IDKey([]byte(password), salt, passes, memory, threads, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1
}

// CreateShareLink stores a link to a file or folder that user reaches.
func (h *Handler) CreateShareLink(ctx context.Context, user *accounts.User, link webui.NewShareLink) (string, error) {
	f, err := h.folderByName(user, link.Folder)
	if err != nil {
		return "", err
	}
	rel, err := webRel(link.Path)
	if err != nil {
		return "", err
	}
	fsys, closeRoot, err := h.openFolder(f)
	if err != nil {
		return "", err
	}
	defer closeRoot()
	fi, err := fsys.root.Stat(rel)
	if err != nil {
		return "", mapFSError(err)
	}
	if link.Uploads && !fi.IsDir() {
		return "", fmt.Errorf("%w: only a folder link can accept uploads", webui.ErrUploadRejected)
	}

	password := ""
	if link.Password != "" {
		password = h.shares.hashSharePassword(link.Password)
	}
	var expires int64
	if !link.Expires.IsZero() {
		expires = link.Expires.Unix()
	}
	token := newShareToken()
	_, err = h.shares.db.ExecContext(ctx, `INSERT INTO files_shares
		(token_hash, user_id, owner, root, path, is_dir, password, expires, uploads, created)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
		tokenHash(token), user.ID, user.Name, f.key, rel, fi.IsDir(), password, expires, link.Uploads, h.shares.now().Unix())
	if err != nil {
		return "", fmt.Errorf("storing share link: %w", err)
	}
	return token, nil
}

const shareColumns = `id, owner, root, path, is_dir, password, expires, uploads, created`

// shareRow is a stored link with its password hash, which ShareLink
// does not carry out of this package.
type shareRow struct {
	link     webui.ShareLink
	key      string
	password string
}

func scanShare(scan func(...any) error) (*shareRow, error) {
	var row shareRow
	var expires, created int64
	err := scan(&row.link.ID, &row.link.Owner, &row.key, &row.link.Path, &row.link.Dir, &row.password, &expires, &row.link.Uploads, &created)
	if err != nil {
		return nil, err
	}
	row.link.Folder = row.key
	if strings.HasPrefix(row.key, "home/") {
		row.link.Folder = "home"
	}
	row.link.HasPassword = row.password != ""
	if expires != 0 {
		row.link.Expires = time.Unix(expires, 0)
	}
	row.link.Created = time.Unix(created, 0)
	if row.link.Path == "." {
		row.link.Path = ""
	}
	return &row, nil
}

func (h *Handler) ShareLinks(ctx context.Context, user *accounts.User) ([]webui.ShareLink, error) {
	query := `SELECT ` + shareColumns + ` FROM files_shares WHERE user_id = ? ORDER BY created DESC, id DESC`
	args := []any{user.ID}
	if user.Role == accounts.RoleOwner {
		query = `SELECT ` + shareColumns + ` FROM files_shares ORDER BY created DESC, id DESC`
		args = nil
	}
	rows, err := h.shares.db.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("reading share links: %w", err)
	}
	defer rows.Close()
	var links []webui.ShareLink
	for rows.Next() {
		row, err := scanShare(rows.Scan)
		if err != nil {
			return nil, fmt.Errorf("reading share links: %w", err)
		}
		links = append(links, row.link)
	}
	return links, rows.Err()
}

func (h *Handler) RevokeShareLink(ctx context.Context, user *accounts.User, id int64) error {
	query, args := `DELETE FROM files_shares WHERE id = ? AND user_id = ?`, []any{id, user.ID}
	if user.Role == accounts.RoleOwner {
		query, args = `DELETE FROM files_shares WHERE id = ?`, []any{id}
	}
	res, err := h.shares.db.ExecContext(ctx, query, args...)
	if err != nil {
		return fmt.Errorf("revoking share link: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return webui.ErrShareNotFound
	}
	return nil
}

// shareByToken returns the stored link of token unless it expired.
func (h *Handler) shareByToken(ctx context.Context, token string) (*shareRow, error) {
	row, err := scanShare(h.shares.db.QueryRowContext(ctx,
		`SELECT `+shareColumns+` FROM files_shares WHERE token_hash = ?`, tokenHash(token)).Scan)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, webui.ErrShareNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("reading share link: %w", err)
	}
	if !row.link.Expires.IsZero() && !h.shares.now().Before(row.link.Expires) {
		return nil, webui.ErrShareNotFound
	}
	return row, nil
}

func (h *Handler) OpenShareLink(ctx context.Context, token string) (*webui.ShareLink, error) {
	row, err := h.shareByToken(ctx, token)
	if err != nil {
		return nil, err
	}
	return &row.link, nil
}

// CheckSharePassword reports whether password opens link. A link without
// a password opens with any.
//
// The web interface calls it through the login throttle
// (accounts.Store.CheckSecret), which slows down repeated guesses.
func (h *Handler) CheckSharePassword(ctx context.Context, link *webui.ShareLink, password string) bool {
	var phc string
	err := h.shares.db.QueryRowContext(ctx, `SELECT password FROM files_shares WHERE id = ?`, link.ID).Scan(&phc)
	if err != nil {
		return false
	}
	return phc == "" || checkSharePassword(phc, password)
}

// shareRoot opens the folder tree of link and, for a folder link, a root
// confined to the shared folder.
func (h *Handler) shareRoot(link *webui.ShareLink) (fsys *rootFS, sub *os.Root, closeAll func(), err error) {
	row, err := h.shareRowByID(link.ID)
	if err != nil {
		return nil, nil, nil, err
	}
	f, err := h.folderByKey(row.key)
	if err != nil {
		return nil, nil, nil, err
	}
	fsys, closeRoot, err := h.openFolder(f)
	if err != nil {
		return nil, nil, nil, err
	}
	if !row.link.Dir {
		return fsys, nil, closeRoot, nil
	}
	rel := row.link.Path
	if rel == "" {
		rel = "."
	}
	sub, err = fsys.root.OpenRoot(rel)
	if err != nil {
		closeRoot()
		return nil, nil, nil, mapFSError(err)
	}
	return fsys, sub, func() { sub.Close(); closeRoot() }, nil
}

func (h *Handler) shareRowByID(id int64) (*shareRow, error) {
	row, err := scanShare(h.shares.db.QueryRow(`SELECT `+shareColumns+` FROM files_shares WHERE id = ?`, id).Scan)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, webui.ErrShareNotFound
	}
	return row, err
}

func (h *Handler) ListShare(ctx context.Context, link *webui.ShareLink, dir string) ([]webui.FileEntry, error) {
	rel, err := webRel(dir)
	if err != nil {
		return nil, err
	}
	if !link.Dir {
		return nil, webui.ErrFileNotFound
	}
	_, sub, closeAll, err := h.shareRoot(link)
	if err != nil {
		return nil, err
	}
	defer closeAll()
	entries, err := listDir(sub, rel)
	return entries, mapFSError(err)
}

func (h *Handler) OpenShareFile(ctx context.Context, link *webui.ShareLink, name string) (*os.File, error) {
	rel, err := webRel(name)
	if err != nil {
		return nil, err
	}
	fsys, sub, closeAll, err := h.shareRoot(link)
	if err != nil {
		return nil, err
	}
	defer closeAll()
	if !link.Dir {
		if rel != "." {
			return nil, webui.ErrFileNotFound
		}
		file, err := fsys.root.Open(relOrDot(link.Path))
		return file, mapFSError(err)
	}
	file, err := sub.Open(rel)
	if err == nil {
		if fi, statErr := file.Stat(); statErr == nil && fi.IsDir() {
			file.Close()
			return nil, webui.ErrFileNotFound
		}
	}
	return file, mapFSError(err)
}

func relOrDot(p string) string {
	if p == "" {
		return "."
	}
	return p
}

// UploadToShare stores a file in a drop box link's folder. It never
// replaces a file: a taken name gets a number, as in "Foto (2).jpg".
func (h *Handler) UploadToShare(ctx context.Context, link *webui.ShareLink, name string, body io.Reader) error {
	if !link.Dir || !link.Uploads {
		return webui.ErrUploadRejected
	}
	if err := checkName(name); err != nil {
		return err
	}
	fsys, _, closeAll, err := h.shareRoot(link)
	if err != nil {
		return err
	}
	defer closeAll()
	rel, err := freeName(fsys.root, relOrDot(link.Path), name)
	if err != nil {
		return mapFSError(err)
	}
	return mapFSError(fsys.store(rel, body))
}

// freeName returns dir/name, or dir/"name (n).ext" for the first n that
// no file has.
func freeName(root *os.Root, dir, name string) (string, error) {
	ext := path.Ext(name)
	base := strings.TrimSuffix(name, ext)
	candidate := name
	for n := 2; n < 1000; n++ {
		rel := path.Join(dir, candidate)
		if _, err := root.Lstat(rel); errors.Is(err, fs.ErrNotExist) {
			return rel, nil
		} else if err != nil {
			return "", err
		}
		candidate = fmt.Sprintf("%s (%d)%s", base, n, ext)
	}
	return "", fs.ErrExist
}
