package files

import (
	"bufio"
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/net/webdav"
	"golang.org/x/text/unicode/norm"
)

// This file serves the common PROPFIND requests itself: allprop or a list
// of property names, Depth 0 or 1, on resources whose dead properties are
// plain text, such as the Win32 times that Windows sets. It stats each
// entry of a folder once and streams the response (multistatus.go).
// Everything else (propname, include, dead properties with XML content)
// still goes to the webdav package, whose generic XML encoder took about
// four times as long as nginx for a folder of 10,000 files
// (BenchmarkPropfind10000).

// propfindBody is the part of a PROPFIND body (RFC 4918 section 14.20) that
// the fast path handles.
type propfindBody struct {
	XMLName  xml.Name  `xml:"DAV: propfind"`
	Allprop  *struct{} `xml:"DAV: allprop"`
	Propname *struct{} `xml:"DAV: propname"`
	Include  *struct{} `xml:"DAV: include"`
	Prop     *struct {
		Names []struct {
			XMLName xml.Name
		} `xml:",any"`
	} `xml:"DAV: prop"`
}

// parseFastPropfind returns the property names that the body requests, nil
// for allprop, and false when the webdav package must handle the body.
func parseFastPropfind(body []byte) (names []xml.Name, ok bool) {
	if len(bytes.TrimSpace(body)) == 0 {
		return nil, true
	}
	var pf propfindBody
	if err := xml.Unmarshal(body, &pf); err != nil {
		return nil, false
	}
	switch {
	case pf.Propname != nil || pf.Include != nil:
		return nil, false
	case pf.Allprop != nil && pf.Prop == nil:
		return nil, true
	case pf.Allprop == nil && pf.Prop != nil && len(pf.Prop.Names) > 0:
		for _, n := range pf.Prop.Names {
			names = append(names, n.XMLName)
		}
		return names, true
	}
	return nil, false
}

// Live properties that allprop returns (RFC 4918 section 15), in the order
// of the response.
var (
	propResourceType  = xml.Name{Space: "DAV:", Local: "resourcetype"}
	propDisplayName   = xml.Name{Space: "DAV:", Local: "displayname"}
	propContentLength = xml.Name{Space: "DAV:", Local: "getcontentlength"}
	propLastModified  = xml.Name{Space: "DAV:", Local: "getlastmodified"}
	propContentType   = xml.Name{Space: "DAV:", Local: "getcontenttype"}
	propETag          = xml.Name{Space: "DAV:", Local: "getetag"}
	propSupportedLock = xml.Name{Space: "DAV:", Local: "supportedlock"}

	allpropNames = []xml.Name{propResourceType, propDisplayName, propContentLength, propLastModified,
		propContentType, propETag, propSupportedLock}
)

// propfindEntry is one resource of the response, reduced to what the live
// properties need, so that a listing of 10,000 entries stays small.
type propfindEntry struct {
	name    string // base name on disk, "" for the root of the folder tree
	size    int64
	modTime time.Time // in UTC
	dir     bool
}

func newPropfindEntry(fi fs.FileInfo) propfindEntry {
	return propfindEntry{name: fi.Name(), size: fi.Size(), modTime: fi.ModTime().UTC(), dir: fi.IsDir()}
}

// propfindListing is the resource of a PROPFIND request and its dead
// properties, and for Depth 1 on a folder, its children's.
type propfindListing struct {
	rel       string // the resource, relative to the root
	self      propfindEntry
	selfDead  map[xml.Name]webdav.Property
	folder    bool                                    // Depth 1 on a folder
	childDead map[string]map[xml.Name]webdav.Property // by child name in NFC

	// children is the folder's listing when it had to be read before the
	// response, and nil when the response reads the folder as it goes.
	children []propfindEntry
}

// servePropfindFast writes the response and returns true, or returns false
// without writing when the request needs the webdav package.
func (h *Handler) servePropfindFast(w http.ResponseWriter, r *http.Request, fsys *rootFS, f folder, name string, body []byte) bool {
	depth := r.Header.Get("Depth")
	if depth != "0" && depth != "1" {
		return false
	}
	names, ok := parseFastPropfind(body)
	if !ok {
		return false
	}
	listing, ok := fsys.listPropfind(name, depth == "1")
	if !ok {
		return false
	}

	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.WriteHeader(http.StatusMultiStatus)
	bw := bufio.NewWriterSize(w, 64<<10)
	ms := newMultistatusWriter(bw, fsys, f.prefix, names)
	if err := ms.writeListing(listing); err != nil {
		// The status is sent and part of the listing may be too. Breaking
		// the connection keeps a client from taking a partial listing
		// for the whole folder, which a sync client would act on.
		// NOTE: no test reaches this branch. The tests run as root, and
		// fstatat does not fail on folder permissions for root.
		h.log.Error("reading folder for PROPFIND", "folder", fsys.key, "err", err)
		panic(http.ErrAbortHandler)
	}
	bw.Flush()
	return true
}

// listPropfind stats the resource and reads the dead properties. It
// returns false when the resource is missing, a listed resource has a dead
// property with XML elements in its value, or a read fails. The webdav
// package then serves the request and reports any error.
func (fsys *rootFS) listPropfind(name string, children bool) (*propfindListing, bool) {
	rel := relPath(name)
	fi, err := fsys.stat(rel)
	if err != nil {
		return nil, false
	}
	l := &propfindListing{rel: rel, self: newPropfindEntry(fi)}
	if rel == "." {
		l.self.name = ""
	}
	dir, base := splitRel(rel)
	siblings, err := fsys.props.folder(dir)
	if err != nil {
		return nil, false
	}
	l.selfDead = siblings[base]
	if !plainTextProps(l.selfDead) {
		return nil, false
	}

	if !children || !fi.IsDir() {
		return l, true
	}
	l.folder = true
	if l.childDead, err = fsys.props.folder(rel); err != nil {
		return nil, false
	}
	for _, props := range l.childDead {
		if !plainTextProps(props) {
			return l, fsys.readChildren(l)
		}
	}
	return l, true
}

// readChildren reads the listing of l's folder ahead of the response, and
// reports whether none of the listed children has a dead property with
// XML elements. Properties of names that are not listed do not count.
func (fsys *rootFS) readChildren(l *propfindListing) bool {
	l.children = []propfindEntry{}
	err := fsys.eachEntry(l.rel, func(e propfindEntry) {
		l.children = append(l.children, e)
	})
	if err != nil {
		return false
	}
	for _, e := range l.children {
		if !plainTextProps(l.childDead[norm.NFC.String(e.name)]) {
			return false
		}
	}
	return true
}

// plainTextProps reports whether no value in props contains XML markup.
func plainTextProps(props map[xml.Name]webdav.Property) bool {
	for _, p := range props {
		if bytes.ContainsAny(p.InnerXML, "<>") {
			return false
		}
	}
	return true
}

// streamEntries calls fn for each entry of the folder rel in directory
// order, like eachEntry. It reads the folder in a second goroutine, so
// that the stat calls overlap with encoding and sending the response.
func (fsys *rootFS) streamEntries(rel string, fn func(*propfindEntry)) error {
	const batchSize = 256
	full := make(chan []propfindEntry, 2)
	empty := make(chan []propfindEntry, 3) // batches that fn is done with
	readErr := make(chan error, 1)
	go func() {
		defer close(full)
		batch := make([]propfindEntry, 0, batchSize)
		readErr <- fsys.eachEntry(rel, func(e propfindEntry) {
			batch = append(batch, e)
			if len(batch) < batchSize {
				return
			}
			full <- batch
			select {
			case batch = <-empty:
				batch = batch[:0]
			default:
				batch = make([]propfindEntry, 0, batchSize)
			}
		})
		if len(batch) > 0 {
			full <- batch
		}
	}()

	// The loop drains full until the reader closes it, so the reader
	// goroutine cannot block on a send, even when reading fails.
	for batch := range full {
		for i := range batch {
			fn(&batch[i])
		}
		select {
		case empty <- batch:
		default:
		}
	}
	return <-readErr
}

// eachEntry calls fn for each entry of the folder rel in directory order,
// without uploads in progress, with one lstat per entry. Like the webdav
// package, it follows a symbolic link through the root and leaves the link
// out when that fails.
func (fsys *rootFS) eachEntry(rel string, fn func(propfindEntry)) error {
	dir, err := fsys.root.OpenRoot(rel)
	if err != nil {
		return err
	}
	defer dir.Close()
	f, err := dir.Open(".")
	if err != nil {
		return err
	}
	defer f.Close()

	for {
		// Batches keep the names of a large folder out of memory.
		names, err := f.Readdirnames(256)
		for _, name := range names {
			e, ok, err := fsys.statEntry(dir, f, rel, name)
			if err != nil {
				return err
			}
			if ok {
				fn(e)
			}
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// statEntry returns the entry of name in the folder rel, which dir and f
// have open, or false when the listing leaves name out.
func (fsys *rootFS) statEntry(dir *os.Root, f *os.File, rel, name string) (propfindEntry, bool, error) {
	if strings.HasPrefix(name, tempPrefix) {
		return propfindEntry{}, false, nil
	}
	e, plain, err := lstatChild(dir, f, name)
	if errors.Is(err, fs.ErrNotExist) {
		// Removed since the folder was read, which os.File.Readdir
		// skips as well.
		return propfindEntry{}, false, nil
	}
	if err != nil {
		return propfindEntry{}, false, err
	}
	if !plain {
		fi, err := fsys.stat(path.Join(rel, name))
		if err != nil {
			return propfindEntry{}, false, nil
		}
		e = newPropfindEntry(fi)
	}
	return e, true, nil
}
