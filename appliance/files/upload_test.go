package files

import (
	"log/slog"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestRemoveStaleUploads guards against temporary files of uploads that a
// power cut interrupted filling the disk forever.
func TestRemoveStaleUploads(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	stale := filepath.Join(dir, "a", tempPrefix+"old")
	fresh := filepath.Join(dir, "a", tempPrefix+"new")
	kept := filepath.Join(dir, "a", "old.txt")
	if err := os.MkdirAll(filepath.Dir(stale), 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{stale, fresh, kept} {
		if err := os.WriteFile(name, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	old := now.Add(-2 * staleUploadAge)
	os.Chtimes(stale, old, old)
	os.Chtimes(kept, old, old)

	removeStaleUploads(slog.New(slog.DiscardHandler), []string{dir, ""}, now)

	if _, err := os.Stat(stale); !os.IsNotExist(err) {
		t.Errorf("stale upload: got %v, want removed", err)
	}
	for _, name := range []string{fresh, kept} {
		if _, err := os.Stat(name); err != nil {
			t.Errorf("%s: got %v, want kept", filepath.Base(name), err)
		}
	}
}
