package files

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heimwolke/heimwolke/appliance/webui"
	"github.com/heimwolke/heimwolke/packages/accounts"
)

const lockBody = `<?xml version="1.0" encoding="utf-8"?>
<D:lockinfo xmlns:D="DAV:"><D:lockscope><D:exclusive/></D:lockscope><D:locktype><D:write/></D:locktype><D:owner>max</D:owner></D:lockinfo>`

func TestDeleteUserRemovesHomeAndLinks(t *testing.T) {
	env := newTestEnv(t, Options{SharePasswordMemoryKiB: 64})
	ctx := context.Background()
	h := env.handler
	if err := h.UploadFile(ctx, env.member, "home", "tagebuch.txt", strings.NewReader("Liebes Tagebuch")); err != nil {
		t.Fatal(err)
	}
	if err := h.UploadFile(ctx, env.member, "shared", "rezept.txt", strings.NewReader("Apfelkuchen")); err != nil {
		t.Fatal(err)
	}
	homeLink, err := h.CreateShareLink(ctx, env.member, webui.NewShareLink{Folder: "home", Path: "tagebuch.txt"})
	if err != nil {
		t.Fatal(err)
	}
	sharedLink, err := h.CreateShareLink(ctx, env.member, webui.NewShareLink{Folder: "shared", Path: "", Uploads: true})
	if err != nil {
		t.Fatal(err)
	}
	ownerLink, err := h.CreateShareLink(ctx, env.owner, webui.NewShareLink{Folder: "shared", Path: "rezept.txt"})
	if err != nil {
		t.Fatal(err)
	}
	proppatch := `<?xml version="1.0"?><D:propertyupdate xmlns:D="DAV:" xmlns:Z="urn:example:z"><D:set><D:prop><Z:farbe>blau</Z:farbe></D:prop></D:set></D:propertyupdate>`
	if status, body := env.do(t, "max", "PROPPATCH", env.homeURL("max")+"tagebuch.txt", proppatch, nil); status != 207 {
		t.Fatalf("PROPPATCH: status %d, want 207; body:\n%s", status, body)
	}
	if status, body := env.do(t, "max", "LOCK", env.homeURL("max")+"brief.txt", lockBody, map[string]string{"Timeout": "Second-3600"}); status != 201 {
		t.Fatalf("LOCK: status %d, want 201; body:\n%s", status, body)
	}

	if err := h.DeleteUser(ctx, "max"); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}

	for name, token := range map[string]string{"home link": homeLink, "shared folder link": sharedLink} {
		if _, err := h.OpenShareLink(ctx, token); !errors.Is(err, webui.ErrShareNotFound) {
			t.Errorf("%s after DeleteUser: got %v, want ErrShareNotFound", name, err)
		}
	}
	if _, err := h.OpenShareLink(ctx, ownerLink); err != nil {
		t.Errorf("owner's link after DeleteUser: %v, want it kept", err)
	}
	if _, err := os.Stat(filepath.Join(env.dataDir, "home", "max")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("home folder after DeleteUser: got %v, want it missing", err)
	}
	if _, err := os.Stat(filepath.Join(env.dataDir, "home", ".deleted-max")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("moved home folder after DeleteUser: got %v, want it removed", err)
	}
	if data, err := os.ReadFile(filepath.Join(env.dataDir, "shared", "rezept.txt")); err != nil || string(data) != "Apfelkuchen" {
		t.Errorf("file in the shared folder after DeleteUser: got %q (%v), want it kept", data, err)
	}
	var props int
	if err := h.props.db.QueryRow(`SELECT count(*) FROM files_props WHERE root = 'home/max'`).Scan(&props); err != nil {
		t.Fatal(err)
	}
	if props != 0 {
		t.Errorf("dead properties of home/max after DeleteUser: got %d rows, want 0", props)
	}
	h.mu.Lock()
	_, hasState := h.roots["home/max"]
	h.mu.Unlock()
	if hasState {
		t.Error("locks and usage of home/max kept after DeleteUser, want them dropped")
	}

	if err := h.DeleteUser(ctx, "max"); err != nil {
		t.Errorf("second DeleteUser: %v, want nil", err)
	}
}

// TestDeleteUserNewMemberStartsEmpty guards against a new member with the
// login name of a deleted one inheriting their files, links or locks.
func TestDeleteUserNewMemberStartsEmpty(t *testing.T) {
	env := newTestEnv(t, Options{SharePasswordMemoryKiB: 64})
	ctx := context.Background()
	h := env.handler
	if err := h.UploadFile(ctx, env.member, "home", "tagebuch.txt", strings.NewReader("Liebes Tagebuch")); err != nil {
		t.Fatal(err)
	}
	if _, err := h.CreateShareLink(ctx, env.member, webui.NewShareLink{Folder: "home", Path: ""}); err != nil {
		t.Fatal(err)
	}
	if status, body := env.do(t, "max", "LOCK", env.homeURL("max")+"brief.txt", lockBody, map[string]string{"Timeout": "Second-3600"}); status != 201 {
		t.Fatalf("LOCK: status %d, want 201; body:\n%s", status, body)
	}

	if err := h.DeleteUser(ctx, "max"); err != nil {
		t.Fatal(err)
	}
	if err := env.accounts.DeleteUser(ctx, env.member.ID); err != nil {
		t.Fatal(err)
	}
	newMax := createUser(t, env.accounts, "max", false)
	secret, _, err := env.accounts.CreateAppPassword(ctx, newMax.ID, "test", accounts.ScopeDAV)
	if err != nil {
		t.Fatal(err)
	}
	env.secrets["max"] = secret

	entries, err := h.ListFiles(ctx, newMax, "home", "")
	if err != nil {
		t.Fatalf("listing the new member's home: %v", err)
	}
	if len(entries) != 0 {
		t.Errorf("new member's home: got %d entries, want 0: %+v", len(entries), entries)
	}
	links, err := h.ShareLinks(ctx, newMax)
	if err != nil || len(links) != 0 {
		t.Errorf("new member's share links: got %d (%v), want 0", len(links), err)
	}
	if status, body := env.do(t, "max", "PUT", env.homeURL("max")+"brief.txt", "Hallo", nil); status != 201 {
		t.Errorf("PUT where the deleted member held a lock: status %d, want 201; body:\n%s", status, body)
	}
}

func TestDeleteUserRejectsInvalidLogin(t *testing.T) {
	env := newTestEnv(t, Options{})
	for _, login := range []string{"", ".", "..", "max/../olga", `a\b`} {
		if err := env.handler.DeleteUser(context.Background(), login); err == nil {
			t.Errorf("DeleteUser(%q): got nil, want an error", login)
		}
	}
	if _, err := os.Stat(env.dataDir); err != nil {
		t.Errorf("data folder after invalid DeleteUser calls: %v", err)
	}
}

// TestDropBoxUploadCountsAgainstOwner guards against an anonymous drop
// box link filling the disk past its creator's quota.
func TestDropBoxUploadCountsAgainstOwner(t *testing.T) {
	env := newTestEnv(t, Options{SharePasswordMemoryKiB: 64, QuotaBytes: 100})
	ctx := context.Background()
	h := env.handler
	if err := h.MakeFolder(ctx, env.member, "home", "Eingang"); err != nil {
		t.Fatal(err)
	}
	if err := h.UploadFile(ctx, env.member, "home", "alt.txt", strings.NewReader(strings.Repeat("a", 60))); err != nil {
		t.Fatal(err)
	}
	token, err := h.CreateShareLink(ctx, env.member, webui.NewShareLink{Folder: "home", Path: "Eingang", Uploads: true})
	if err != nil {
		t.Fatal(err)
	}
	link, err := h.OpenShareLink(ctx, token)
	if err != nil {
		t.Fatal(err)
	}

	if err := h.UploadToShare(ctx, link, "gross.bin", strings.NewReader(strings.Repeat("x", 50))); !errors.Is(err, webui.ErrQuotaExceeded) {
		t.Errorf("drop box upload past the owner's quota: got %v, want ErrQuotaExceeded", err)
	}
	if _, err := os.Stat(filepath.Join(env.dataDir, "home", "max", "Eingang", "gross.bin")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("rejected upload on disk: got %v, want it missing", err)
	}
	if err := h.UploadToShare(ctx, link, "klein.txt", strings.NewReader(strings.Repeat("x", 30))); err != nil {
		t.Errorf("drop box upload within the quota: %v", err)
	}
}
