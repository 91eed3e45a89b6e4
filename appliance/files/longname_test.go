package files

import (
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"golang.org/x/text/unicode/norm"

	"github.com/heimwolke/heimwolke/appliance/webui"
)

// TestCheckNameTooLong checks that a name longer than ext4 stores is an
// invalid name, for which the web UI returns 400 rather than an internal
// error.
func TestCheckNameTooLong(t *testing.T) {
	if err := checkName(strings.Repeat("a", 255)); err != nil {
		t.Errorf("checkName of 255 bytes: %v, want nil", err)
	}
	if err := checkName(strings.Repeat("ä", 128)); !errors.Is(err, webui.ErrInvalidName) {
		t.Errorf("checkName of 256 bytes: %v, want ErrInvalidName", err)
	}
}

// TestDAVNameTooLong checks that WebDAV requests that would create a name
// longer than 255 bytes get 400 with the limit in the message, where the
// webdav package would send 405.
func TestDAVNameTooLong(t *testing.T) {
	env := newTestEnv(t, Options{})
	home := env.homeURL("max")
	if status, _ := env.do(t, "max", "PUT", home+"a.txt", "a", nil); status != http.StatusCreated {
		t.Fatalf("PUT a.txt: got %d, want 201", status)
	}

	tooLong := []string{
		strings.Repeat("y", 256),
		strings.Repeat("ü", 127) + ".t",
		// 383 bytes in NFD, 256 in NFC.
		strings.Repeat("u\u0308", 127) + ".t",
	}
	for _, name := range tooLong {
		target := home + url.PathEscape(name)
		requests := []struct {
			method, url, body string
			header            map[string]string
		}{
			{"PUT", target, "x", nil},
			{"MKCOL", target, "", nil},
			{"PUT", home + url.PathEscape(name) + "/b.txt", "x", nil},
			{"COPY", home + "a.txt", "", map[string]string{"Destination": target}},
			{"MOVE", home + "a.txt", "", map[string]string{"Destination": target}},
		}
		for _, req := range requests {
			status, body := env.do(t, "max", req.method, req.url, req.body, req.header)
			if status != http.StatusBadRequest {
				t.Errorf("%s with a %d-byte name: got %d, want 400", req.method, len(name), status)
			}
			if !strings.Contains(body, "255 bytes") {
				t.Errorf("%s with a %d-byte name: got message %q, want one naming 255 bytes", req.method, len(name), body)
			}
		}
	}
	if status, _ := env.do(t, "max", "GET", home+"a.txt", "", nil); status != http.StatusOK {
		t.Errorf("GET a.txt after the rejected MOVE: got %d, want 200", status)
	}

	fits := []string{
		strings.Repeat("y", 255),
		strings.Repeat("ü", 126) + ".t",
		strings.Repeat("u\u0308", 126) + ".tx",
	}
	for i, name := range fits {
		target := home + url.PathEscape(name)
		method, header := "PUT", map[string]string(nil)
		switch i {
		case 1:
			method = "MKCOL"
		case 2:
			method, header = "COPY", map[string]string{"Destination": target}
			target = home + "a.txt"
		}
		if status, body := env.do(t, "max", method, target, "", header); status != http.StatusCreated {
			t.Errorf("%s with a name of %d bytes in NFC: got %d %q, want 201", method, len(norm.NFC.String(name)), status, body)
		}
	}
}
