package files

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/appliance/webui"
)

func TestShareLinksLifecycle(t *testing.T) {
	now := time.Date(2026, 5, 1, 12, 0, 0, 0, time.UTC)
	env := newTestEnv(t, Options{SharePasswordMemoryKiB: 64, Now: func() time.Time { return now }})
	ctx := context.Background()
	h := env.handler
	if err := h.UploadFile(ctx, env.member, "home", "bericht.pdf", strings.NewReader("%PDF")); err != nil {
		t.Fatal(err)
	}

	token, err := h.CreateShareLink(ctx, env.member, webui.NewShareLink{Folder: "home", Path: "bericht.pdf", Password: "geheim", Expires: now.Add(24 * time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	link, err := h.OpenShareLink(ctx, token)
	if err != nil {
		t.Fatalf("opening a fresh link: %v", err)
	}
	if !link.HasPassword || link.Dir {
		t.Errorf("link: got password %v dir %v, want true false", link.HasPassword, link.Dir)
	}
	if h.CheckSharePassword(ctx, link, "falsch") {
		t.Errorf("wrong password opened the link")
	}
	if !h.CheckSharePassword(ctx, link, "geheim") {
		t.Errorf("right password did not open the link")
	}
	f, err := h.OpenShareFile(ctx, link, "")
	if err != nil {
		t.Fatal(err)
	}
	data, _ := io.ReadAll(f)
	f.Close()
	if string(data) != "%PDF" {
		t.Errorf("shared file: got %q, want %q", data, "%PDF")
	}
	if _, err := h.ListShare(ctx, link, ""); !errors.Is(err, webui.ErrFileNotFound) {
		t.Errorf("listing a file link: got %v, want ErrFileNotFound", err)
	}
	if err := h.UploadToShare(ctx, link, "x.txt", strings.NewReader("x")); !errors.Is(err, webui.ErrUploadRejected) {
		t.Errorf("upload to a file link: got %v, want ErrUploadRejected", err)
	}
	if _, err := h.CreateShareLink(ctx, env.member, webui.NewShareLink{Folder: "home", Path: "bericht.pdf", Uploads: true}); !errors.Is(err, webui.ErrUploadRejected) {
		t.Errorf("drop box on a file: got %v, want ErrUploadRejected", err)
	}
	if _, err := h.CreateShareLink(ctx, env.member, webui.NewShareLink{Folder: "website", Path: ""}); !errors.Is(err, webui.ErrFolderDenied) {
		t.Errorf("member sharing the website folder: got %v, want ErrFolderDenied", err)
	}

	// The owner sees the member's link; the member does not see the owner's.
	if _, err := h.CreateShareLink(ctx, env.owner, webui.NewShareLink{Folder: "shared", Path: ""}); err != nil {
		t.Fatal(err)
	}
	if links, _ := h.ShareLinks(ctx, env.owner); len(links) != 2 {
		t.Errorf("owner's list: got %d links, want 2", len(links))
	}
	if links, _ := h.ShareLinks(ctx, env.member); len(links) != 1 || links[0].Owner != "max" {
		t.Errorf("member's list: got %+v, want max's one link", links)
	}

	now = now.Add(25 * time.Hour)
	if _, err := h.OpenShareLink(ctx, token); !errors.Is(err, webui.ErrShareNotFound) {
		t.Errorf("expired link: got %v, want ErrShareNotFound", err)
	}
	if err := h.RevokeShareLink(ctx, env.member, link.ID); err != nil {
		t.Errorf("revoking own link: %v", err)
	}
	if err := h.RevokeShareLink(ctx, env.member, link.ID); !errors.Is(err, webui.ErrShareNotFound) {
		t.Errorf("revoking twice: got %v, want ErrShareNotFound", err)
	}
}

// TestShareFolderStaysConfined guards against a folder link reaching the
// rest of the home folder through dot segments.
func TestShareFolderStaysConfined(t *testing.T) {
	env := newTestEnv(t, Options{})
	ctx := context.Background()
	h := env.handler
	if err := h.MakeFolder(ctx, env.member, "home", "Urlaub"); err != nil {
		t.Fatal(err)
	}
	if err := h.UploadFile(ctx, env.member, "home", "privat.txt", strings.NewReader("privat")); err != nil {
		t.Fatal(err)
	}
	token, err := h.CreateShareLink(ctx, env.member, webui.NewShareLink{Folder: "home", Path: "Urlaub", Uploads: true})
	if err != nil {
		t.Fatal(err)
	}
	link, err := h.OpenShareLink(ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"../privat.txt", "..", "Urlaub/../../privat.txt", "/privat.txt/.."} {
		if f, err := h.OpenShareFile(ctx, link, name); err == nil {
			f.Close()
			t.Errorf("OpenShareFile(%q): got the file, want an error", name)
		}
	}
	for _, name := range []string{"../x.txt", "a/b.txt", "..", tempPrefix + "x"} {
		if err := h.UploadToShare(ctx, link, name, strings.NewReader("x")); !errors.Is(err, webui.ErrInvalidName) {
			t.Errorf("UploadToShare(%q): got %v, want ErrInvalidName", name, err)
		}
	}
}

// TestSharePasswordThrottled guesses a link's password over HTTP until the
// login throttle responds 429 with Retry-After. The right password is then
// rejected too until the wait is over.
func TestSharePasswordThrottled(t *testing.T) {
	env := newTestEnv(t, Options{SharePasswordMemoryKiB: 64})
	ctx := context.Background()
	if err := env.handler.UploadFile(ctx, env.member, "home", "bericht.pdf", strings.NewReader("%PDF")); err != nil {
		t.Fatal(err)
	}
	token, err := env.handler.CreateShareLink(ctx, env.member, webui.NewShareLink{Folder: "home", Path: "bericht.pdf", Password: "geheim"})
	if err != nil {
		t.Fatal(err)
	}
	base := newWebUI(t, env)
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	resp, err := client.Get(base + "/s/" + token)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := regexp.MustCompile(`name="csrf" value="([^"]+)"`).FindSubmatch(page)
	if m == nil {
		t.Fatalf("share page has no CSRF token:\n%s", page)
	}
	unlock := func(password string) *http.Response {
		t.Helper()
		resp, err := client.PostForm(base+"/s/"+token+"/unlock", url.Values{"csrf": {string(m[1])}, "password": {password}})
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		return resp
	}

	var last *http.Response
	for i := range 10 {
		last = unlock(fmt.Sprintf("falsch%d", i))
		if last.StatusCode == http.StatusTooManyRequests {
			break
		}
		if last.StatusCode != http.StatusUnauthorized {
			t.Fatalf("wrong password %d: got status %d, want 401 or 429", i, last.StatusCode)
		}
	}
	if last.StatusCode != http.StatusTooManyRequests || last.Header.Get("Retry-After") == "" {
		t.Fatalf("after 10 wrong passwords: got status %d Retry-After %q, want 429 with Retry-After", last.StatusCode, last.Header.Get("Retry-After"))
	}
	if resp := unlock("geheim"); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("right password while throttled: got status %d, want 429", resp.StatusCode)
	}
}
