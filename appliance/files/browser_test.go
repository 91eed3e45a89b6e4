package files

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/heimwolke/heimwolke/appliance/webui"
	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// newWebUI serves the web interface with env's files on loopback, which
// counts as the LAN, with the setup complete.
func newWebUI(t *testing.T, env *testEnv) string {
	t.Helper()
	ctx := context.Background()
	setup, err := webui.OpenSetupState(ctx, filepath.Join(t.TempDir(), "setup.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { setup.Close() })
	if err := setup.MarkComplete(ctx, time.Now()); err != nil {
		t.Fatal(err)
	}
	ui, err := webui.New(webui.Options{
		Accounts:    env.accounts,
		Setup:       setup,
		Logger:      slog.New(slog.DiscardHandler),
		AgentSocket: filepath.Join(t.TempDir(), "no-agent.sock"),
		Files:       env.handler,
	})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(ui)
	t.Cleanup(srv.Close)
	return srv.URL
}

// newChromium starts a headless Chromium with its own profile, so that
// each one starts logged out.
func newChromium(t *testing.T, chromium string) context.Context {
	t.Helper()
	profile := t.TempDir()
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(profile),
	)
	t.Cleanup(cancelAlloc)
	ctx, cancelTab := chromedp.NewContext(allocCtx)
	t.Cleanup(cancelTab)
	ctx, cancelTimeout := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancelTimeout)
	return ctx
}

func run(t *testing.T, ctx context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

func text(t *testing.T, ctx context.Context, selector string) string {
	t.Helper()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(selector)))
	if err != nil {
		t.Fatalf("reading %s: %v", selector, err)
	}
	return strings.TrimSpace(s)
}

// TestBrowserUploadAndShareLink logs max in, uploads a file with the
// progress form, creates a password-protected drop box link to a folder,
// and opens the link in a second, logged-out browser, which downloads the
// file and uploads one of its own.
func TestBrowserUploadAndShareLink(t *testing.T) {
	chromium := testpeer.Require(t, "chromium", "chromium")
	env := newTestEnv(t, Options{SharePasswordMemoryKiB: 64})
	base := newWebUI(t, env)
	work := t.TempDir()
	local := filepath.Join(work, "Einkaufsliste Übersicht.txt")
	if err := os.WriteFile(local, []byte("Milch, Brot\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	ctx := newChromium(t, chromium)
	run(t, ctx, "logging in",
		chromedp.Navigate(base+"/login"),
		chromedp.SendKeys(chromedp.ID("login_name"), "max"),
		chromedp.SendKeys(chromedp.ID("login_password"), "correct horse battery max"),
		chromedp.Click(chromedp.ID("login")),
		chromedp.WaitVisible(chromedp.ID("logout")),
	)
	run(t, ctx, "creating a folder",
		chromedp.Navigate(base+"/files/"),
		chromedp.SendKeys(chromedp.ID("folder-name"), "Ablage"),
		chromedp.Click(chromedp.ID("mkdir")),
		chromedp.WaitVisible(chromedp.CSS(".notice")),
	)
	run(t, ctx, "uploading",
		chromedp.Navigate(base+"/files/home/Ablage/"),
		chromedp.SetUploadFiles(chromedp.ID("file"), []string{local}),
		chromedp.Click(chromedp.ID("upload")),
		chromedp.WaitVisible(chromedp.CSS(".notice")),
	)
	if got := text(t, ctx, "#entries"); !strings.Contains(got, "Einkaufsliste Übersicht.txt") {
		t.Errorf("listing after upload: got %q, want the uploaded file", got)
	}
	stored := filepath.Join(env.dataDir, "home", "max", "Ablage", "Einkaufsliste Übersicht.txt")
	if data, err := os.ReadFile(stored); err != nil || string(data) != "Milch, Brot\n" {
		t.Errorf("uploaded file on disk: got %q (%v), want %q", data, err, "Milch, Brot\n")
	}

	run(t, ctx, "creating a share link",
		chromedp.Navigate(base+"/files/home/"),
		chromedp.Click(chromedp.CSS("#entries details summary")),
		chromedp.SendKeys(chromedp.CSS("#entries input[name=password]"), "Sommer"),
		chromedp.Click(chromedp.CSS("#entries input[name=uploads]")),
		chromedp.Click(chromedp.CSS("#entries .share-button")),
		chromedp.WaitVisible(chromedp.ID("share-url")),
	)
	link := text(t, ctx, "#share-url")
	if !strings.HasPrefix(link, base+"/s/") {
		t.Fatalf("share URL: got %q, want it below %s/s/", link, base)
	}

	visitor := newChromium(t, chromium)
	run(t, visitor, "opening the link logged out",
		chromedp.Navigate(link),
		chromedp.WaitVisible(chromedp.ID("unlock")),
		chromedp.SendKeys(chromedp.ID("password"), "Sommer"),
		chromedp.Click(chromedp.ID("unlock")),
		chromedp.WaitVisible(chromedp.ID("entries")),
	)
	if got := text(t, visitor, "#entries"); !strings.Contains(got, "Einkaufsliste Übersicht.txt") {
		t.Errorf("shared folder listing: got %q, want the file", got)
	}

	dropped := filepath.Join(work, "Einkaufsliste Übersicht.txt")
	run(t, visitor, "uploading to the drop box",
		chromedp.SetUploadFiles(chromedp.ID("file"), []string{dropped}),
		chromedp.Click(chromedp.ID("upload")),
	)
	second := filepath.Join(env.dataDir, "home", "max", "Ablage", "Einkaufsliste Übersicht (2).txt")
	waitForFile(t, second)

	// Without the password cookie the link shows only the password form.
	resp, err := http.Get(link + "/" + "Einkaufsliste%20%C3%9Cbersicht.txt")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || strings.Contains(string(body), "Milch") {
		t.Errorf("download without password: got %d, want 401 without the content", resp.StatusCode)
	}
}

// waitForFile waits up to ten seconds for an upload that the browser
// sends in the background to land.
func waitForFile(t *testing.T, name string) {
	t.Helper()
	for range 500 {
		if _, err := os.Stat(name); err == nil {
			return
		}
		sleep()
	}
	t.Errorf("file %s did not appear", name)
}
