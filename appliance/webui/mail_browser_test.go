package webui

import (
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// TestBrowserMailAdminFitsPhone guards against a mail queue table that
// made the owner's mail page wider than a phone's screen, and an address
// field without the style of the other text fields.
func TestBrowserMailAdminFitsPhone(t *testing.T) {
	chromium := testpeer.Require(t, "chromium", "chromium")
	shots := screenshotDir(t)

	next := time.Now().Add(37 * time.Minute)
	long := "dial tcp [2001:db8:1234:5678:9abc:def0:1234:5678]:25: connect: connection refused; " +
		strings.Repeat("550-5.7.1 The IP you're using to send mail is not authorized to send email directly to our servers. ", 3)
	env := newMailEnv(t, staticQueue{
		{MessageID: 1, Login: "anna", From: "anna@example.test", To: "ein.sehr.langer.empfaengername.ohne.umbruch@eine-sehr-lange-domain-die-nicht-umbricht.example",
			Attempts: 12, NextAttempt: next, LastError: long, Created: next.Add(-time.Hour)},
		{MessageID: 2, Login: "ben", From: "ben@example.test", To: "oma@example.net", Attempts: 1, NextAttempt: next, Created: next},
	})
	srv := httptest.NewServer(env.h) // listens on 127.0.0.1, a LAN address
	t.Cleanup(srv.Close)

	b := newTab(t, chromium, srv.URL, shots, "de")
	b.open("/login")
	b.fill("login_name", "anna")
	b.fill("login_password", ownerPassword)
	b.click("login")
	b.open("/admin/mail")
	b.shot("mail-admin-queue")

	checkPhoneLayout(t, b, "/admin/mail")
	if !b.eval(`document.getElementById("queue").getBoundingClientRect().right <= document.documentElement.clientWidth`) {
		t.Error("the queue table reaches past the right edge of the screen")
	}
	// The address field gets the same box as the text fields: a block of
	// the full width, at least 2.75rem (44 CSS pixels) high.
	address := `getComputedStyle(document.getElementById("address"))`
	if !b.eval(address + `.display === "block" && ` + address + `.minHeight === "44px"`) {
		t.Error(`the type="email" address field lacks the text field style`)
	}
}
