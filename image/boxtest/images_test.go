package boxtest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/heimwolke/heimwolke/image/build"
)

// imageDir holds the images that the tests of this package share, so that
// each target is built once per run.
var imageDir string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "heimwolke-boxtest-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	imageDir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

var (
	buildMu sync.Mutex
	built   = map[string]*build.Result{}
)

// image returns the image for target, building it on first use.
func image(t *testing.T, target string) *build.Result {
	t.Helper()
	buildMu.Lock()
	defer buildMu.Unlock()
	if res, ok := built[target]; ok {
		return res
	}
	res, err := buildInto(t, target, filepath.Join(imageDir, "heimwolke-"+target+".img"))
	if err != nil {
		t.Fatalf("building the %s image: %v", target, err)
	}
	built[target] = res
	return res
}

func buildInto(t *testing.T, target, out string) (*build.Result, error) {
	src, err := build.FindSourceDir(".")
	if err != nil {
		return nil, err
	}
	return build.Build(context.Background(), build.Options{
		Target:    target,
		Out:       out,
		SourceDir: src,
		Progress:  testWriter{t},
	})
}

// testWriter sends build progress to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p[:len(p)-min(1, len(p))]))
	return len(p), nil
}

func sourceVersion(t *testing.T) string {
	t.Helper()
	src, err := build.FindSourceDir(".")
	if err != nil {
		t.Fatal(err)
	}
	return build.SourceVersion(context.Background(), src)
}

// copySparse copies an image to dir and sets its size, keeping holes sparse,
// so a test can change or grow it without touching the shared one.
func copySparse(t *testing.T, src string, size int64) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	st, err := in.Stat()
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1<<20)
	zero := make([]byte, 1<<20)
	for off := int64(0); off < st.Size(); off += int64(len(buf)) {
		n, err := in.ReadAt(buf, off)
		if n == 0 && err != nil {
			t.Fatal(err)
		}
		if bytes.Equal(buf[:n], zero[:n]) {
			continue // leave a hole
		}
		if _, err := out.WriteAt(buf[:n], off); err != nil {
			t.Fatal(err)
		}
	}
	if err := out.Truncate(max(size, st.Size())); err != nil {
		t.Fatal(err)
	}
	return dst
}
