package files

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/heimwolke/heimwolke/appliance/webui"
	"github.com/heimwolke/heimwolke/packages/testpeer"
)

const mib = 1 << 20

// newSmallDiskEnv returns a test server whose data folder is a 64 MiB
// tmpfs, with a free-space reserve of 16 MiB.
func newSmallDiskEnv(t *testing.T) *testEnv {
	t.Helper()
	testpeer.RequireRoot(t, "mounting a small tmpfs as the data folder")
	env := newTestEnv(t, Options{FreeReserveBytes: 16 * mib})
	if err := syscall.Mount("tmpfs", env.dataDir, "tmpfs", 0, "size=64m,mode=0700"); err != nil {
		t.Fatalf("mounting tmpfs on %s: %v", env.dataDir, err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(env.dataDir, 0); err != nil {
			t.Errorf("unmounting %s: %v", env.dataDir, err)
		}
	})
	return env
}

// put sends a PUT of size bytes as user, with a Content-Length header or
// chunked, and returns the status.
func (env *testEnv) put(t *testing.T, user, url string, size int, chunked bool) int {
	t.Helper()
	var body io.Reader = bytes.NewReader(make([]byte, size))
	if chunked {
		// Hiding the reader's type keeps net/http from setting a length.
		body = io.MultiReader(body)
	}
	req, err := http.NewRequest("PUT", url, body)
	if err != nil {
		t.Fatal(err)
	}
	if chunked {
		req.ContentLength = -1
	}
	req.SetBasicAuth(user, env.secrets[user])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// filesIn returns the names of all files below dir, uploads in progress
// included.
func filesIn(t *testing.T, dir string) []string {
	t.Helper()
	var names []string
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			names = append(names, strings.TrimPrefix(p, dir+"/"))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

func TestFreeReserveWebDAV(t *testing.T) {
	env := newSmallDiskEnv(t)
	home := env.homeURL("max")
	homeDir := filepath.Join(env.dataDir, "home", "max")

	if got := env.put(t, "max", home+"small.bin", 8*mib, false); got != http.StatusCreated {
		t.Fatalf("PUT of 8 MiB: got %d, want 201", got)
	}

	// 8 + 48 MiB would leave 8 of 64 MiB free, less than the 16 MiB reserve.
	for _, chunked := range []bool{false, true} {
		if got := env.put(t, "max", home+"big.bin", 48*mib, chunked); got != http.StatusInsufficientStorage {
			t.Errorf("PUT of 48 MiB (chunked %v): got %d, want 507", chunked, got)
		}
		if got := filesIn(t, homeDir); len(got) != 1 || got[0] != "small.bin" {
			t.Errorf("files after the rejected PUT (chunked %v): got %q, want [small.bin]", chunked, got)
		}
	}

	// 8 + 30 MiB leaves 26 MiB free; a copy of the 30 MiB would leave
	// less than the reserve.
	if got := env.put(t, "max", home+"medium.bin", 30*mib, true); got != http.StatusCreated {
		t.Fatalf("PUT of 30 MiB: got %d, want 201", got)
	}
	status, body := env.do(t, "max", "COPY", home+"medium.bin", "", map[string]string{"Destination": home + "copy.bin"})
	if status != http.StatusInsufficientStorage {
		t.Errorf("COPY of 30 MiB: got %d %q, want 507", status, body)
	}
	if _, err := os.Stat(filepath.Join(homeDir, "copy.bin")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("copy.bin after the rejected COPY: got %v, want not found", err)
	}
	if got := filesIn(t, homeDir); len(got) != 2 {
		t.Errorf("files after the rejected COPY: got %q, want medium.bin and small.bin", got)
	}

	status, _ = env.do(t, "max", "COPY", home+"small.bin", "", map[string]string{"Destination": home + "copy.bin"})
	if status != http.StatusCreated {
		t.Errorf("COPY of 8 MiB: got %d, want 201", status)
	}
}

func TestFreeReserveQuotaProperty(t *testing.T) {
	env := newSmallDiskEnv(t)
	status, body := env.do(t, "max", "PROPFIND", env.homeURL("max"),
		`<?xml version="1.0"?><propfind xmlns="DAV:"><prop><quota-available-bytes/></prop></propfind>`,
		map[string]string{"Depth": "0"})
	if status != http.StatusMultiStatus {
		t.Fatalf("PROPFIND: got %d, want 207", status)
	}
	// 64 MiB free minus the 16 MiB reserve.
	if want := ">50331648<"; !strings.Contains(body, want) {
		t.Errorf("quota-available-bytes: got %s, want %s", body, want)
	}
}

func TestFreeReserveWebUpload(t *testing.T) {
	env := newSmallDiskEnv(t)
	ctx := context.Background()
	h := env.handler

	err := h.UploadFile(ctx, env.member, "shared", "big.bin", bytes.NewReader(make([]byte, 50*mib)))
	if !errors.Is(err, webui.ErrQuotaExceeded) {
		t.Errorf("web upload of 50 MiB: got %v, want ErrQuotaExceeded", err)
	}
	if err := h.UploadFile(ctx, env.member, "shared", "small.bin", bytes.NewReader(make([]byte, mib))); err != nil {
		t.Errorf("web upload of 1 MiB: %v", err)
	}

	token, err := h.CreateShareLink(ctx, env.member, webui.NewShareLink{Folder: "shared", Uploads: true})
	if err != nil {
		t.Fatal(err)
	}
	link, err := h.OpenShareLink(ctx, token)
	if err != nil {
		t.Fatal(err)
	}
	err = h.UploadToShare(ctx, link, "drop.bin", bytes.NewReader(make([]byte, 50*mib)))
	if !errors.Is(err, webui.ErrQuotaExceeded) {
		t.Errorf("drop box upload of 50 MiB: got %v, want ErrQuotaExceeded", err)
	}
	if err := h.UploadToShare(ctx, link, "note.txt", strings.NewReader("hallo")); err != nil {
		t.Errorf("drop box upload of 5 bytes: %v", err)
	}

	got := filesIn(t, filepath.Join(env.dataDir, "shared"))
	if len(got) != 2 || got[0] != "note.txt" || got[1] != "small.bin" {
		t.Errorf("files after the uploads: got %q, want [note.txt small.bin]", got)
	}
}
