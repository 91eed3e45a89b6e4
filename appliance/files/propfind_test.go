package files

import (
	"encoding/xml"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

// multistatus is enough of a PROPFIND response to compare two of them.
type multistatus struct {
	Responses []struct {
		Href     string `xml:"DAV: href"`
		Propstat []struct {
			Prop struct {
				Props []struct {
					XMLName xml.Name
					Inner   string `xml:",innerxml"`
				} `xml:",any"`
			} `xml:"DAV: prop"`
			Status string `xml:"DAV: status"`
		} `xml:"DAV: propstat"`
	} `xml:"DAV: response"`
}

// propValues maps href and property name to status and text content. It
// leaves out supportedlock, whose lock entries differ on purpose, and the
// dead property of the file "ohne", which only the second response has.
func propValues(t *testing.T, body string) map[string]string {
	t.Helper()
	var ms multistatus
	if err := xml.Unmarshal([]byte(body), &ms); err != nil {
		t.Fatalf("parsing multistatus: %v\n%s", err, body)
	}
	values := map[string]string{}
	for _, r := range ms.Responses {
		for _, ps := range r.Propstat {
			for _, p := range ps.Prop.Props {
				if p.XMLName.Local == "supportedlock" || (p.XMLName.Local == "farbe" && strings.HasSuffix(r.Href, "/ohne")) {
					continue
				}
				var text struct {
					Chardata string `xml:",chardata"`
					Inner    []struct {
						XMLName xml.Name
					} `xml:",any"`
				}
				xml.Unmarshal([]byte("<x>"+p.Inner+"</x>"), &text)
				value := text.Chardata
				for _, child := range text.Inner {
					value += "<" + child.XMLName.Local + ">"
				}
				values[r.Href+" "+p.XMLName.Space+" "+p.XMLName.Local] = ps.Status + " " + value
			}
		}
	}
	return values
}

// TestPropfindFastPathMatchesWebdav compares the responses of the fast
// path with those of the webdav package, which serves the same folder once
// a dead property exists in it.
func TestPropfindFastPathMatchesWebdav(t *testing.T) {
	env := newTestEnv(t, Options{QuotaBytes: 1 << 20})
	dir := env.homeURL("max") + "Ordner%20%C3%A4/"
	env.do(t, "max", "MKCOL", dir, "", nil)
	env.do(t, "max", "MKCOL", dir+"Unterordner/", "", nil)
	env.do(t, "max", "PUT", dir+"a%20&%20b.txt", "hallo", nil)
	env.do(t, "max", "PUT", dir+"bild.jpg", "jpeg", nil)
	env.do(t, "max", "PUT", dir+"ohne", "x", nil)

	bodies := []string{
		"",
		`<?xml version="1.0"?><D:propfind xmlns:D="DAV:"><D:allprop/></D:propfind>`,
		`<?xml version="1.0"?><D:propfind xmlns:D="DAV:" xmlns:Z="urn:z"><D:prop><D:getetag/><D:getcontentlength/><D:resourcetype/><D:quota-used-bytes/><D:supportedlock/><Z:unbekannt/></D:prop></D:propfind>`,
	}
	var fast []map[string]string
	for _, body := range bodies {
		status, out := env.do(t, "max", "PROPFIND", dir, body, map[string]string{"Depth": "1"})
		if status != http.StatusMultiStatus {
			t.Fatalf("PROPFIND: got %d, want 207", status)
		}
		fast = append(fast, propValues(t, out))
	}

	// Plain text dead properties stay on the fast path, in both
	// responses; one with an element moves the folder to the webdav
	// package.
	if status, _ := env.do(t, "max", "PROPPATCH", dir+"bild.jpg", propSet, nil); status != http.StatusMultiStatus {
		t.Fatalf("PROPPATCH: got %d, want 207", status)
	}
	for i, body := range bodies {
		_, out := env.do(t, "max", "PROPFIND", dir, body, map[string]string{"Depth": "1"})
		if !strings.Contains(out, "shared") {
			t.Errorf("body %d: the webdav package wrote the response for a plain text dead property", i)
		}
		if i < 2 && !strings.Contains(out, ">blau</") {
			t.Errorf("body %d: allprop lacks the dead property: %s", i, out)
		}
		fast[i] = propValues(t, out)
	}
	elementValue := strings.Replace(propSet, "blau", "<Z:rot/>", 1)
	if status, _ := env.do(t, "max", "PROPPATCH", dir+"ohne", elementValue, nil); status != http.StatusMultiStatus {
		t.Fatalf("PROPPATCH: got %d, want 207", status)
	}
	for i, body := range bodies {
		_, out := env.do(t, "max", "PROPFIND", dir, body, map[string]string{"Depth": "1"})
		slow := propValues(t, out)
		if !reflect.DeepEqual(fast[i], slow) {
			for k, v := range slow {
				if fast[i][k] != v {
					t.Errorf("body %d, %s: fast path %q, webdav package %q", i, k, fast[i][k], v)
				}
			}
			for k, v := range fast[i] {
				if _, ok := slow[k]; !ok {
					t.Errorf("body %d, %s: fast path %q, webdav package has none", i, k, v)
				}
			}
		}
		// The webdav package lists only exclusive locks as supported, which
		// shows that it wrote the response.
		if len(slow) == 0 || strings.Contains(out, "shared") {
			t.Errorf("body %d: the fast path wrote the response although a dead property exists", i)
		}
	}
}

// TestProppatchEmptyValue sets a dead property to an empty element and
// reads it back.
func TestProppatchEmptyValue(t *testing.T) {
	env := newTestEnv(t, Options{})
	file := env.homeURL("max") + "leer.txt"
	env.do(t, "max", "PUT", file, "x", nil)
	empty := strings.Replace(propSet, "<Z:farbe>blau</Z:farbe>", "<Z:farbe/>", 1)
	if status, body := env.do(t, "max", "PROPPATCH", file, empty, nil); status != http.StatusMultiStatus {
		t.Fatalf("PROPPATCH: got %d, want 207: %s", status, body)
	}
	status, body := env.do(t, "max", "PROPFIND", file, propGet, map[string]string{"Depth": "0"})
	if status != http.StatusMultiStatus {
		t.Fatalf("PROPFIND: got %d, want 207", status)
	}
	if got := propValues(t, body)["/dav/files/max/leer.txt urn:test farbe"]; got != "HTTP/1.1 200 OK " {
		t.Errorf("farbe: got %q, want status 200 and an empty value", got)
	}
}
