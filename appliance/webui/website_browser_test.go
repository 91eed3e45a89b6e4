package webui

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/heimwolke/heimwolke/appliance/web"
	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// TestBrowserPublishesWebsite drives headless Chromium behind the real
// front door: the default page on "/", the owner's login, the upload of a
// zip on /admin/website and the published site. It checks that a real
// browser sends the CSRF field before the file, which the upload needs.
func TestBrowserPublishesWebsite(t *testing.T) {
	chromium := testpeer.Require(t, "chromium", "chromium")
	shots := screenshotDir(t)

	env, site := websiteEnv(t)
	front := web.New(web.Options{
		Version:       "v",
		DataDir:       t.TempDir(),
		UI:            env.h,
		Website:       site,
		SetupComplete: env.setup.Complete,
	})
	srv := httptest.NewServer(front)
	t.Cleanup(srv.Close)

	archive := filepath.Join(t.TempDir(), "meine-seite.zip")
	if err := os.WriteFile(archive, zipOf(t,
		"meine-seite/index.html", `<!DOCTYPE html><html lang="de"><head><link rel="stylesheet" href="style.css"><title>Familie Müller</title></head><body><h1 id="hello">Hallo von Familie Müller</h1><script>document.body.dataset.ran = "yes"</script></body></html>`,
		"meine-seite/style.css", "h1 { color: rgb(0, 128, 0); }",
	), 0o644); err != nil {
		t.Fatal(err)
	}

	b := newTab(t, chromium, srv.URL, shots, "de")
	if status := b.open("/"); status != http.StatusOK {
		t.Fatalf("GET / before publishing: status %d, want 200", status)
	}
	b.want(env, "default page heading", b.heading(), "website.default.title")
	b.shot("website-1-default")

	b.open("/login")
	b.fill("login_name", "anna")
	b.fill("login_password", ownerPassword)
	b.click("login")
	if status := b.open("/admin/website"); status != http.StatusOK {
		t.Fatalf("GET /admin/website: status %d, want 200", status)
	}
	b.shot("website-2-upload")

	if err := chromedp.Do(b.ctx, chromedp.SetUploadFiles(chromedp.ID("site"), []string{archive})); err != nil {
		t.Fatalf("choosing the zip file: %v", err)
	}
	if status := b.click("publish"); status != http.StatusOK {
		t.Fatalf("publishing: status %d, want 200 after the redirect", status)
	}
	if got := b.at(); got != "/admin/website?notice=published" {
		t.Errorf("after publishing at %s, want /admin/website?notice=published", got)
	}
	b.shot("website-3-published")

	b.click("view-website")
	if got := b.text("hello"); got != "Hallo von Familie Müller" {
		t.Errorf("published page heading = %q, want the uploaded one", got)
	}
	// The site's own stylesheet and inline script work under its CSP.
	if !b.eval(`getComputedStyle(document.getElementById("hello")).color === "rgb(0, 128, 0)"`) {
		t.Error("the site's stylesheet did not apply")
	}
	if !b.eval(`document.body.dataset.ran === "yes"`) {
		t.Error("the site's inline script did not run")
	}
	b.shot("website-4-site")
}
