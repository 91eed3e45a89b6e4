package website

import (
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"strconv"
	"strings"
	"syscall"
	"unicode/utf8"
)

// Reasons why cleanPath rejects a request path.
var (
	// errBadPath is a path that no browser sends for a link on the site:
	// a dot segment, a NUL or other control character, a backslash or
	// bytes that are not UTF-8. The response is 400.
	errBadPath = errors.New("invalid path")

	// errHidden is a path with a segment that starts with a dot. Such
	// files exist (.htaccess, .git) but are not served, and the response
	// is the same 404 as for a missing file.
	errHidden = errors.New("dotfile")
)

// cleanPath turns the decoded URL path of a request into a slash-separated
// path relative to the site's folder, "." for the folder itself. It
// rejects every path that could leave the folder instead of cleaning it,
// so that "/a/../b" is not silently the same as "/b". Empty segments
// ("//") are dropped. A result passes fs.ValidPath.
func cleanPath(urlPath string) (string, error) {
	if !strings.HasPrefix(urlPath, "/") || !utf8.ValidString(urlPath) {
		return "", errBadPath
	}
	for _, c := range urlPath {
		if c < 0x20 || c == 0x7f || c == '\\' {
			return "", errBadPath
		}
	}

	var segments []string
	hidden := false
	for _, seg := range strings.Split(urlPath[1:], "/") {
		switch {
		case seg == "":
			continue
		case seg == "." || seg == "..":
			return "", errBadPath
		case strings.HasPrefix(seg, "."):
			hidden = true
		}
		segments = append(segments, seg)
	}
	if hidden {
		return "", errHidden
	}
	if len(segments) == 0 {
		return ".", nil
	}
	return strings.Join(segments, "/"), nil
}

// serveFile serves the file or the folder's index.html that the request
// path names, and a 404 for everything else.
func (s *Site) serveFile(w http.ResponseWriter, r *http.Request) {
	rel, err := cleanPath(r.URL.Path)
	if errors.Is(err, errBadPath) {
		s.log.Debug("website request rejected", "path", r.URL.Path, "err", err)
		s.page(w, r, http.StatusBadRequest, "website.bad_request")
		return
	}
	if err != nil {
		s.notFound(w, r, nil)
		return
	}

	root, err := os.OpenRoot(s.dir)
	if err != nil {
		if !errors.Is(err, fs.ErrNotExist) {
			s.log.Error("opening website folder", "path", s.dir, "err", err)
		}
		s.notPublished(w, r, rel)
		return
	}
	defer root.Close()

	f, info, err := openRegularOrDir(root, rel)
	if err != nil {
		s.notFound(w, r, root)
		return
	}
	wantDir := strings.HasSuffix(r.URL.Path, "/")
	switch {
	case info.IsDir() && !wantDir:
		f.Close()
		redirectToFolder(w, r)
		return
	case info.IsDir():
		f.Close()
		f, info, err = openIndex(root, rel)
		if err != nil && rel == "." {
			s.notPublished(w, r, rel)
			return
		}
		if err != nil {
			// A folder without index.html: no listing.
			s.notFound(w, r, root)
			return
		}
	case wantDir:
		// A file with a trailing slash.
		f.Close()
		s.notFound(w, r, root)
		return
	}
	defer f.Close()
	s.serveContent(w, r, f, info, http.StatusOK)
}

// openIndex opens the index.html of the folder dir, if it is a regular
// file.
func openIndex(root *os.Root, dir string) (*os.File, fs.FileInfo, error) {
	name := path.Join(dir, "index.html")
	f, info, err := openRegularOrDir(root, name)
	if err != nil {
		return nil, nil, err
	}
	if info.IsDir() {
		f.Close()
		return nil, nil, fmt.Errorf("%s is a folder: %w", name, fs.ErrNotExist)
	}
	return f, info, nil
}

// openRegularOrDir opens name below root if it is a regular file or a
// folder. Root refuses names and symbolic links that lead out of the
// folder; a device, FIFO or socket is closed again and reported as not
// found. O_NONBLOCK keeps the open of a FIFO from waiting for a writer.
func openRegularOrDir(root *os.Root, name string) (*os.File, fs.FileInfo, error) {
	f, err := root.OpenFile(name, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, nil, err
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	if !info.Mode().IsRegular() && !info.IsDir() {
		f.Close()
		return nil, nil, fmt.Errorf("%s: %w", name, fs.ErrNotExist)
	}
	return f, info, nil
}

// redirectToFolder sends a request for a folder without its trailing
// slash to the path with one, so that the index page's relative links
// resolve inside the folder. The Location is relative to the request
// path (RFC 9110 section 10.2.2).
func redirectToFolder(w http.ResponseWriter, r *http.Request) {
	target := url.PathEscape(path.Base(r.URL.Path)) + "/"
	if r.URL.RawQuery != "" {
		target += "?" + r.URL.RawQuery
	}
	w.Header().Set("Location", target)
	w.WriteHeader(http.StatusMovedPermanently)
}

// serveContent writes f with its type, ETag and Last-Modified.
// http.ServeContent handles Range requests (RFC 9110 section 14) and the
// conditional headers If-None-Match, If-Modified-Since and If-Range
// (section 13) with these, so status 200 may become 206 or 304. Any other
// status (a 404 page) is written with the whole file.
func (s *Site) serveContent(w http.ResponseWriter, r *http.Request, f *os.File, info fs.FileInfo, status int) {
	hdr := w.Header()
	hdr.Set("Content-Type", contentType(info.Name()))
	// Browsers revalidate every time, which costs one 304 per file, so a
	// publish shows at once.
	hdr.Set("Cache-Control", "no-cache")
	if status != http.StatusOK {
		hdr.Set("Content-Length", strconv.FormatInt(info.Size(), 10))
		w.WriteHeader(status)
		if r.Method != http.MethodHead {
			if _, err := f.WriteTo(w); err != nil {
				s.log.Debug("writing website page", "path", r.URL.Path, "err", err)
			}
		}
		return
	}
	hdr.Set("ETag", etag(info))
	http.ServeContent(w, r, info.Name(), info.ModTime(), f)
}

// etag returns a strong entity tag (RFC 9110 section 8.8.3) built from the
// file's inode, modification time and size. A publish writes every file
// anew, so its files get new inodes and times; a strong tag lets If-Range
// work for resumed downloads.
func etag(info fs.FileInfo) string {
	var inode uint64
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		inode = uint64(st.Ino)
	}
	return fmt.Sprintf(`"%x-%x-%x"`, inode, info.ModTime().UnixNano(), info.Size())
}

// contentTypes maps the file extensions of static sites to their media
// types. It replaces mime.TypeByExtension, whose answer depends on the
// machine's /etc/mime.types (the box has none) and whose built-in table
// lacks .ico, .txt and the web fonts. Text types declare UTF-8, which site
// generators write; a page in another encoding must be converted, because
// the header overrides its <meta charset>.
var contentTypes = map[string]string{
	".apng":        "image/apng",
	".atom":        "application/atom+xml",
	".avif":        "image/avif",
	".bmp":         "image/bmp",
	".css":         "text/css; charset=utf-8",
	".csv":         "text/csv; charset=utf-8",
	".gif":         "image/gif",
	".htm":         "text/html; charset=utf-8",
	".html":        "text/html; charset=utf-8",
	".ico":         "image/vnd.microsoft.icon",
	".ics":         "text/calendar; charset=utf-8",
	".jpeg":        "image/jpeg",
	".jpg":         "image/jpeg",
	".js":          "text/javascript; charset=utf-8",
	".json":        "application/json",
	".map":         "application/json",
	".m4a":         "audio/mp4",
	".md":          "text/markdown; charset=utf-8",
	".mjs":         "text/javascript; charset=utf-8",
	".mov":         "video/quicktime",
	".mp3":         "audio/mpeg",
	".mp4":         "video/mp4",
	".oga":         "audio/ogg",
	".ogg":         "audio/ogg",
	".ogv":         "video/ogg",
	".opus":        "audio/ogg",
	".otf":         "font/otf",
	".pdf":         "application/pdf",
	".png":         "image/png",
	".rss":         "application/rss+xml",
	".svg":         "image/svg+xml",
	".ttf":         "font/ttf",
	".txt":         "text/plain; charset=utf-8",
	".vcf":         "text/vcard; charset=utf-8",
	".wasm":        "application/wasm",
	".wav":         "audio/wav",
	".webm":        "video/webm",
	".webmanifest": "application/manifest+json",
	".webp":        "image/webp",
	".woff":        "font/woff",
	".woff2":       "font/woff2",
	".xhtml":       "application/xhtml+xml",
	".xml":         "application/xml",
	".zip":         "application/zip",
}

// contentType returns the media type for a file name, and
// application/octet-stream for an unknown extension. The content is not
// sniffed, so that a file with an unknown name is never shown as HTML.
func contentType(name string) string {
	if t, ok := contentTypes[strings.ToLower(path.Ext(name))]; ok {
		return t
	}
	return "application/octet-stream"
}
