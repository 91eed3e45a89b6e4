package webui

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/heimwolke/heimwolke/packages/accounts"
	"github.com/heimwolke/heimwolke/packages/i18n"
)

//go:embed templates/*.html static/ui.css
var assets embed.FS

// pageTemplates maps a page name, the file name in templates/ without
// ".html", to the page joined with the layout.
type pageTemplates map[string]*template.Template

// standalonePages are complete documents without the layout.
var standalonePages = map[string]bool{"lanonly": true}

func parsePages() (pageTemplates, error) {
	layout, err := template.ParseFS(assets, "templates/layout.html")
	if err != nil {
		return nil, fmt.Errorf("parsing layout template: %w", err)
	}
	entries, err := assets.ReadDir("templates")
	if err != nil {
		return nil, err
	}

	pages := pageTemplates{}
	for _, e := range entries {
		name := strings.TrimSuffix(e.Name(), ".html")
		if name == "layout" {
			continue
		}
		var t *template.Template
		if standalonePages[name] {
			t, err = template.ParseFS(assets, "templates/"+e.Name())
		} else {
			t, err = template.Must(layout.Clone()).ParseFS(assets, "templates/"+e.Name())
		}
		if err != nil {
			return nil, fmt.Errorf("parsing template %s: %w", e.Name(), err)
		}
		pages[name] = t
	}
	return pages, nil
}

// page is the data of every template. Title and the keys passed to T are
// message catalog keys.
type page struct {
	Lang  string
	Title string
	CSRF  string
	User  *accounts.User

	// Step places a wizard page in the wizard, nil elsewhere.
	Step *wizardProgress

	// Notice is a translated message that confirms what the last action did.
	Notice string

	// LanguageSwitch is the link to this page in the other language, empty
	// where the language is not the visitor's choice.
	LanguageSwitch string

	Errors formErrors

	// Data holds what the page shows beyond the above.
	Data any

	// Version is the software version for the footer, empty where the
	// page is public: it stays off the login page, which the internet
	// reaches once the box has a certificate.
	Version string

	catalog i18n.Catalog
}

// T returns the message for key in the page's language.
func (p *page) T(key string) string { return p.catalog.T(p.Lang, key) }

// Tf returns the message for key with each {name} replaced, taking name and
// value pairs.
func (p *page) Tf(key string, pairs ...any) string {
	return fillMessage(p.T(key), pairs...)
}

func fillMessage(msg string, pairs ...any) string {
	for i := 0; i+1 < len(pairs); i += 2 {
		msg = strings.ReplaceAll(msg, "{"+fmt.Sprint(pairs[i])+"}", fmt.Sprint(pairs[i+1]))
	}
	return msg
}

// Time formats t in the page's language, in the box's time zone.
func (p *page) Time(t time.Time) string {
	return t.In(time.Local).Format(p.T("format.datetime"))
}

// inputField is the data of the "input" template: a labelled field with
// its hint and error.
type inputField struct {
	ID, Type, Value, Autocomplete, InputMode string
	Label, Hint, Error                       string
}

// Input returns the field name of type typ with the label from
// "field.<name>" and the hint from "field.<name>.hint", if the catalog has
// one. Password fields never carry their value back.
func (p *page) Input(name, typ, value, autocomplete string) inputField {
	f := inputField{
		ID:           name,
		Type:         typ,
		Value:        value,
		Autocomplete: autocomplete,
		Label:        p.T("field." + name),
		Error:        p.Errors.Get(name),
	}
	if hintKey := "field." + name + ".hint"; p.catalog["en"][hintKey] != "" {
		f.Hint = p.T(hintKey)
	}
	if typ == "password" {
		f.Value = ""
	}
	return f
}

// WithoutHint returns f without its hint, for a form where the catalog's
// hint does not apply, such as the rules for a new password on a form that
// requests an existing one.
func (f inputField) WithoutHint() inputField {
	f.Hint = ""
	return f
}

// Numeric returns f with the numeric keyboard on touch screens.
func (f inputField) Numeric() inputField {
	f.InputMode = "numeric"
	return f
}

// formError is an invalid field and the message that explains the fix.
type formError struct {
	Field   string
	Message string
}

// formErrors lists the invalid fields of a form in the order of the form.
type formErrors []formError

func (e *formErrors) add(field, message string) {
	if e.Get(field) == "" {
		*e = append(*e, formError{field, message})
	}
}

// Get returns the message for field, or "".
func (e formErrors) Get(field string) string {
	for _, fe := range e {
		if fe.Field == field {
			return fe.Message
		}
	}
	return ""
}

// newPage returns the page data for v with the title key.
func (h *Handler) newPage(v *visit, title string) *page {
	p := &page{Lang: v.lang, Title: title, CSRF: h.csrfToken(v), catalog: h.catalog}
	if v.session != nil {
		p.User = &v.session.User
		p.Version = h.version
	}
	return p
}

// t returns the message for key in lang.
func (h *Handler) t(lang, key string, pairs ...any) string {
	return fillMessage(h.catalog.T(lang, key), pairs...)
}

// render writes the page name with status. It renders into a buffer first,
// so that a template error gives a clean 500 and not half a page.
func (h *Handler) render(w http.ResponseWriter, status int, name string, p *page) {
	var buf bytes.Buffer
	if err := h.pages[name].Execute(&buf, p); err != nil {
		h.log.Error("rendering page", "page", name, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Language", p.Lang)
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// messageData is the content of the "message" page.
type messageData struct {
	Text     string
	LinkHref string
	LinkText string
}

// renderMessage shows a page with a title and one paragraph, both catalog
// keys, and a link to linkHref when it is not empty.
func (h *Handler) renderMessage(w http.ResponseWriter, v *visit, status int, title, text, linkHref string) {
	p := h.newPage(v, title)
	data := messageData{Text: p.T(text)}
	if linkHref != "" {
		data.LinkHref = linkHref
		data.LinkText = p.T("ui.continue")
	}
	p.Data = data
	h.render(w, status, "message", p)
}

// renderSetupComplete refuses the wizard once the setup has finished.
func (h *Handler) renderSetupComplete(w http.ResponseWriter, v *visit) {
	p := h.newPage(v, "setup.complete.title")
	p.Data = messageData{Text: p.T("setup.complete.text"), LinkHref: "/login", LinkText: p.T("setup.complete.login")}
	h.render(w, http.StatusForbidden, "message", p)
}

// lanOnlyText is one language's part of the "lanonly" page.
type lanOnlyText struct {
	Lang, Title, Text string
}

// renderLANOnly refuses a request from outside the LAN, in both languages,
// because the visitor's choice of language is not known yet. textKey is
// the catalog key of the reason.
func (h *Handler) renderLANOnly(w http.ResponseWriter, v *visit, textKey string) {
	h.log.Info("request from outside the LAN refused", "source", v.source, "reason", textKey)
	var parts []lanOnlyText
	for _, lang := range []string{"de", "en"} {
		parts = append(parts, lanOnlyText{
			Lang:  lang,
			Title: h.t(lang, "lanonly.title"),
			Text:  h.t(lang, textKey, "address", v.source),
		})
	}
	var buf bytes.Buffer
	if err := h.pages["lanonly"].Execute(&buf, parts); err != nil {
		h.log.Error("rendering page", "page", "lanonly", "err", err)
		http.Error(w, "forbidden", http.StatusForbidden)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(http.StatusForbidden)
	w.Write(buf.Bytes())
}

// waitText formats the wait of a throttled login in lang, rounded up to
// whole seconds, or to whole minutes from two minutes on.
func (h *Handler) waitText(lang string, wait time.Duration) string {
	seconds := int(math.Ceil(wait.Seconds()))
	switch {
	case seconds <= 1:
		return h.t(lang, "wait.second")
	case seconds < 120:
		return h.t(lang, "wait.seconds", "n", seconds)
	default:
		return h.t(lang, "wait.minutes", "n", (seconds+59)/60)
	}
}

// retryAfter returns the Retry-After value for wait: delay-seconds, rounded
// up (RFC 9110 section 10.2.3).
func retryAfter(wait time.Duration) string {
	return strconv.Itoa(max(1, int(math.Ceil(wait.Seconds()))))
}

// setSecurityHeaders forbids scripts, framing and other origins' resources,
// and keeps pages, which may show an app password, out of caches.
func setSecurityHeaders(hdr http.Header) {
	hdr.Set("Content-Security-Policy",
		"default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	hdr.Set("X-Content-Type-Options", "nosniff")
	hdr.Set("X-Frame-Options", "DENY")
	hdr.Set("Referrer-Policy", "no-referrer")
	hdr.Set("Cache-Control", "no-store")
}

func serveStylesheet(w http.ResponseWriter, r *http.Request) {
	css, err := assets.ReadFile("static/ui.css")
	if err != nil {
		http.Error(w, "stylesheet missing", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/css; charset=utf-8")
	w.Header().Set("Cache-Control", "no-cache")
	w.Write(css)
}
