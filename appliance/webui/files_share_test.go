package webui

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/packages/accounts"
)

// shareStore is a FileStore with one drop box link, shareToken, to a
// folder that is protected by sharePassword. It implements only what the
// public share pages use.
type shareStore struct {
	mu       sync.Mutex
	uploaded map[string]string
}

const (
	shareToken    = "c2hhcmUtdG9rZW4tZm9yLXRlc3Rz"
	sharePassword = "kurz" // shorter than an account password may be
)

var errNotInFake = errors.New("not implemented by the test's share store")

var dropBox = ShareLink{ID: 7, Owner: "anna", Folder: "home", Path: "Ablage", Dir: true, HasPassword: true, Uploads: true}

func (s *shareStore) OpenShareLink(ctx context.Context, token string) (*ShareLink, error) {
	if token != shareToken {
		return nil, ErrShareNotFound
	}
	link := dropBox
	return &link, nil
}

func (s *shareStore) CheckSharePassword(ctx context.Context, link *ShareLink, password string) bool {
	return password == sharePassword
}

func (s *shareStore) ListShare(ctx context.Context, link *ShareLink, dir string) ([]FileEntry, error) {
	if dir != "" {
		return nil, ErrFileNotFound
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	var entries []FileEntry
	for name, content := range s.uploaded {
		entries = append(entries, FileEntry{Name: name, Size: int64(len(content))})
	}
	return entries, nil
}

func (s *shareStore) OpenShareFile(ctx context.Context, link *ShareLink, name string) (*os.File, error) {
	return nil, ErrFileNotFound
}

func (s *shareStore) UploadToShare(ctx context.Context, link *ShareLink, name string, body io.Reader) error {
	content, err := io.ReadAll(body)
	if err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.uploaded[name] = string(content)
	return nil
}

func (s *shareStore) ListFiles(ctx context.Context, user *accounts.User, folder, dir string) ([]FileEntry, error) {
	return nil, errNotInFake
}

func (s *shareStore) OpenFile(ctx context.Context, user *accounts.User, folder, name string) (*os.File, error) {
	return nil, errNotInFake
}

func (s *shareStore) UploadFile(ctx context.Context, user *accounts.User, folder, name string, body io.Reader) error {
	return errNotInFake
}

func (s *shareStore) MakeFolder(ctx context.Context, user *accounts.User, folder, name string) error {
	return errNotInFake
}

func (s *shareStore) RenameFile(ctx context.Context, user *accounts.User, folder, from, to string) error {
	return errNotInFake
}

func (s *shareStore) DeleteFile(ctx context.Context, user *accounts.User, folder, name string) error {
	return errNotInFake
}

func (s *shareStore) CreateShareLink(ctx context.Context, user *accounts.User, link NewShareLink) (string, error) {
	return "", errNotInFake
}

// ShareLinks returns the drop box and a file link that expires.
func (s *shareStore) ShareLinks(ctx context.Context, user *accounts.User) ([]ShareLink, error) {
	expiring := ShareLink{ID: 8, Owner: "anna", Folder: "home", Path: "bericht.pdf", Expires: time.Date(2030, 1, 2, 12, 0, 0, 0, time.Local)}
	return []ShareLink{dropBox, expiring}, nil
}

func (s *shareStore) RevokeShareLink(ctx context.Context, user *accounts.User, id int64) error {
	return errNotInFake
}

// shareEnv returns a visitor without a session, from outside the LAN, on a
// handler whose files are a shareStore.
func shareEnv(t *testing.T) (*browser, *shareStore) {
	t.Helper()
	h, store := shareHandler(t)
	visitor := newBrowser(t, h, internetAddr)
	visitor.tls = true
	visitor.acceptLanguage = "de"
	return visitor, store
}

// shareHandler returns a handler after the setup whose files are a
// shareStore.
func shareHandler(t *testing.T) (*Handler, *shareStore) {
	t.Helper()
	env := setupDone(t)
	store := &shareStore{uploaded: map[string]string{}}
	h, err := New(Options{
		Accounts: env.accounts, Setup: env.setup, Logger: slog.New(slog.DiscardHandler), Files: store,
		AgentSocket: filepath.Join(t.TempDir(), "no-agent.sock"),
	})
	if err != nil {
		t.Fatal(err)
	}
	return h, store
}

// TestShareListValidity guards against "Gültig bis: bis zum Widerruf" for a
// link without an end: such a link is listed as valid until revoked.
func TestShareListValidity(t *testing.T) {
	h, _ := shareHandler(t)
	b := newBrowser(t, h, lanAddr)
	logIn(t, b, "anna", ownerPassword)
	res := b.get("/files/shares")
	wantStatus(t, res, http.StatusOK)
	wantBody(t, res, "<dt>Gültig</dt><dd>bis Du ihn widerrufst</dd>", "<dt>Gültig bis</dt><dd>02.01.2030, 12:00</dd>")
	wantNotInBody(t, res, "bis zum Widerruf")
}

// TestShareUnlockFormWithoutPasswordRules guards against the unlock form
// showing the rules for a new account password, which a link's password
// need not follow.
func TestShareUnlockFormWithoutPasswordRules(t *testing.T) {
	visitor, _ := shareEnv(t)
	res := visitor.get("/s/" + shareToken + "/")
	wantStatus(t, res, http.StatusUnauthorized)
	wantBody(t, res, `id="unlock"`, `autocomplete="current-password"`)
	wantNotInBody(t, res, `id="password-hint"`, "Mindestens 10 Zeichen")

	// A short link password opens the link.
	wantRedirect(t, visitor.post("/s/"+shareToken+"/unlock", form("password", sharePassword)), "/s/"+shareToken)
	wantBody(t, visitor.get("/s/"+shareToken+"/"), `id="upload"`)
}

// TestShareUploadRedirects guards against a drop box upload that leaves the
// browser on the upload path, where a reload found nothing.
func TestShareUploadRedirects(t *testing.T) {
	visitor, store := shareEnv(t)
	visitor.get("/s/" + shareToken + "/")
	visitor.post("/s/"+shareToken+"/unlock", form("password", sharePassword))
	visitor.get("/s/" + shareToken + "/")

	res := visitor.uploadTo("/s/"+shareToken+"/upload",
		uploadField{name: "csrf", content: []byte(visitor.csrf())},
		uploadField{name: "file", filename: "liste.txt", content: []byte("Milch\n")},
		uploadField{name: "file", filename: "brot.txt", content: []byte("Brot\n")})
	wantRedirect(t, res, "/s/"+shareToken+"/?uploaded=2")
	if got := store.uploaded["liste.txt"]; got != "Milch\n" {
		t.Errorf("uploaded liste.txt: got %q, want %q", got, "Milch\n")
	}

	res = visitor.get(res.header.Get("Location"))
	wantStatus(t, res, http.StatusOK)
	wantBody(t, res, "Danke! Hochgeladene Dateien: 2.", "liste.txt", `id="upload"`)

	// A number that is not a count shows no notice.
	res = visitor.get("/s/" + shareToken + "/?uploaded=-1")
	wantStatus(t, res, http.StatusOK)
	if strings.Contains(res.body, "Hochgeladene Dateien") {
		t.Error("listing with ?uploaded=-1 shows the upload notice, want none")
	}
}
