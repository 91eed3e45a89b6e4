package website

import (
	"bytes"
	"html/template"
	"net/http"
	"os"

	"github.com/heimwolke/heimwolke/packages/i18n"
)

// pageCSP is the policy of the pages that the box writes itself: inline
// styles and nothing else.
const pageCSP = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"

var pageTemplate = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="{{.Lang}}">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{.T "title"}}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 40rem; margin: 3rem auto; padding: 0 1rem; line-height: 1.5; color: #1d2733; }
h1 { font-weight: 600; }
a { color: #1f5fa8; }
.aside { margin-top: 2rem; padding-top: 1rem; border-top: 1px solid #c9d1da; color: #55606d; }
</style>
</head>
<body>
<h1 id="title">{{.T "title"}}</h1>
<p id="text">{{.T "text"}}</p>
{{- if .Home}}
<p><a href="/" id="home">{{.T "home"}}</a></p>
{{- end}}
{{- if .Owner}}
<p class="aside" id="owner">{{.T "owner"}} <a href="/admin/website">{{.T "owner.link"}}</a></p>
{{- end}}
<p><a href="?lang={{.Other}}" hreflang="{{.Other}}" lang="{{.Other}}" id="language">{{.Global "ui.other_language"}}</a></p>
</body>
</html>
`))

// pageData is the content of a page the box writes: the messages under
// Key in the catalog, in Lang.
type pageData struct {
	Lang, Other string
	Key         string

	// Home adds a link to the home page, Owner a hint for the owner on
	// how to publish.
	Home, Owner bool

	catalog i18n.Catalog
}

// T returns the message Key.name.
func (p pageData) T(name string) string { return p.catalog.T(p.Lang, p.Key+"."+name) }

// Global returns the message key, outside Key.
func (p pageData) Global(key string) string { return p.catalog.T(p.Lang, key) }

// requestLanguage returns "de" or "en": a ?lang= choice, then the
// browser's Accept-Language.
func requestLanguage(r *http.Request) string {
	return i18n.Negotiate(r.URL.Query().Get("lang"), r.Header.Get("Accept-Language"))
}

// page writes the box's own page with the messages under key. It renders
// into a buffer, so that a template error gives a clean 500.
func (s *Site) page(w http.ResponseWriter, r *http.Request, status int, key string) {
	data := pageData{Lang: requestLanguage(r), Other: "de", Key: key, catalog: s.catalog}
	if data.Lang == "de" {
		data.Other = "en"
	}
	data.Home = status == http.StatusNotFound || status == http.StatusBadRequest
	data.Owner = key == "website.default"

	var buf bytes.Buffer
	if err := pageTemplate.Execute(&buf, data); err != nil {
		s.log.Error("rendering website page", "key", key, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	hdr := w.Header()
	hdr.Set("Content-Security-Policy", pageCSP)
	hdr.Set("Content-Type", "text/html; charset=utf-8")
	hdr.Set("Content-Language", data.Lang)
	hdr.Set("Vary", "Accept-Language")
	hdr.Set("Cache-Control", "no-cache")
	w.WriteHeader(status)
	if r.Method != http.MethodHead {
		w.Write(buf.Bytes())
	}
}

// plainError writes the message key as text with status.
func (s *Site) plainError(w http.ResponseWriter, r *http.Request, status int, key string) {
	lang := requestLanguage(r)
	w.Header().Set("Content-Language", lang)
	w.Header().Set("Vary", "Accept-Language")
	http.Error(w, s.catalog.T(lang, key), status)
}

// notPublished writes the response while the folder has no index.html:
// the default page on "/", a 404 elsewhere.
func (s *Site) notPublished(w http.ResponseWriter, r *http.Request, rel string) {
	if rel != "." {
		s.notFound(w, r, nil)
		return
	}
	s.page(w, r, http.StatusOK, "website.default")
}

// notFound writes the site's own 404.html if it has one, which static site
// generators and hosts use by that name, and otherwise the box's page in
// the visitor's language. root is nil when the site's folder could not be
// opened.
func (s *Site) notFound(w http.ResponseWriter, r *http.Request, root *os.Root) {
	if root != nil {
		f, info, err := openRegularOrDir(root, "404.html")
		if err == nil {
			defer f.Close()
			if !info.IsDir() {
				s.serveContent(w, r, f, info, http.StatusNotFound)
				return
			}
		}
	}
	s.page(w, r, http.StatusNotFound, "website.not_found")
}
