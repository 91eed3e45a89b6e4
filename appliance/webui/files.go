package webui

import (
	"context"
	"errors"
	"io"
	"os"
	"time"

	"github.com/heimwolke/heimwolke/packages/accounts"
)

// FileStore is the members' file storage that the file browser and the
// share links use; *files.Handler implements it. A folder is "home" (the
// user's own), "shared" (the household's) or "website" (the owner's
// website document root). Paths are slash-separated below the folder, ""
// being the folder itself.
type FileStore interface {
	// ListFiles returns the entries of dir, folders first, by name.
	ListFiles(ctx context.Context, user *accounts.User, folder, dir string) ([]FileEntry, error)

	// OpenFile opens a file for reading. The caller closes it.
	OpenFile(ctx context.Context, user *accounts.User, folder, name string) (*os.File, error)

	// UploadFile stores body as the file name, replacing it atomically,
	// within the folder's quota.
	UploadFile(ctx context.Context, user *accounts.User, folder, name string, body io.Reader) error

	MakeFolder(ctx context.Context, user *accounts.User, folder, name string) error
	RenameFile(ctx context.Context, user *accounts.User, folder, from, to string) error
	DeleteFile(ctx context.Context, user *accounts.User, folder, name string) error

	// CreateShareLink stores a share link and returns the secret token of
	// its URL.
	CreateShareLink(ctx context.Context, user *accounts.User, link NewShareLink) (token string, err error)

	// ShareLinks returns the user's links, and for the owner everyone's.
	ShareLinks(ctx context.Context, user *accounts.User) ([]ShareLink, error)

	// RevokeShareLink deletes a link of the user, or any link for the
	// owner.
	RevokeShareLink(ctx context.Context, user *accounts.User, id int64) error

	// OpenShareLink returns the link for token. It returns
	// ErrShareNotFound for unknown, revoked and expired links.
	OpenShareLink(ctx context.Context, token string) (*ShareLink, error)

	// CheckSharePassword reports whether password opens the link.
	CheckSharePassword(ctx context.Context, link *ShareLink, password string) bool

	// ListShare, OpenShareFile and UploadToShare act below the link's
	// file or folder, never outside it.
	ListShare(ctx context.Context, link *ShareLink, dir string) ([]FileEntry, error)
	OpenShareFile(ctx context.Context, link *ShareLink, name string) (*os.File, error)
	UploadToShare(ctx context.Context, link *ShareLink, name string, body io.Reader) error
}

// FileEntry is a file or folder in a listing.
type FileEntry struct {
	Name     string
	Dir      bool
	Size     int64
	Modified time.Time
}

// NewShareLink describes a share link to create.
type NewShareLink struct {
	Folder, Path string
	Password     string    // empty: none
	Expires      time.Time // zero: never
	Uploads      bool      // a folder link that accepts uploads
}

// ShareLink is a stored share link.
type ShareLink struct {
	ID          int64
	Owner       string // the login name of the user who created it
	Folder      string
	Path        string
	Dir         bool
	HasPassword bool
	Expires     time.Time // zero: never
	Uploads     bool
	Created     time.Time
}

// Errors of a FileStore that the pages explain.
var (
	ErrFileNotFound   = errors.New("file not found")
	ErrFileExists     = errors.New("a file or folder of that name exists")
	ErrInvalidName    = errors.New("invalid file name")
	ErrQuotaExceeded  = errors.New("quota exceeded")
	ErrShareNotFound  = errors.New("share link not found or expired")
	ErrFolderDenied   = errors.New("folder not accessible")
	ErrUploadRejected = errors.New("this link does not accept uploads")
)
