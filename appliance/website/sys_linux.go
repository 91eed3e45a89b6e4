package website

import (
	"fmt"
	"os"

	"golang.org/x/sys/unix"
)

// exchangeFolders swaps a and b in one step (renameat2(2) with
// RENAME_EXCHANGE, Linux 3.15 and later; ext4 and tmpfs support it).
func exchangeFolders(a, b string) error {
	return unix.Renameat2(unix.AT_FDCWD, a, unix.AT_FDCWD, b, unix.RENAME_EXCHANGE)
}

// flusher makes an unpacked site durable. On Linux one syncfs(2) on the
// staging folder's file system writes all files and folders at once,
// which on an SD card is much faster than an fsync per file. Since Linux
// 5.8, syncfs reports write-back errors that occurred after the file
// descriptor was opened, so it is opened before unpacking starts.
type flusher struct {
	dir *os.File
}

func startFlush(staging string) (*flusher, error) {
	dir, err := os.Open(staging)
	if err != nil {
		return nil, fmt.Errorf("website: opening staging folder: %w", err)
	}
	return &flusher{dir: dir}, nil
}

// add records a path below the staging folder that finish must flush;
// syncfs covers them all.
func (f *flusher) add(string) {}

func (f *flusher) finish(*os.Root) error {
	if err := unix.Syncfs(int(f.dir.Fd())); err != nil {
		return fmt.Errorf("website: flushing unpacked site to disk: %w", err)
	}
	return nil
}

func (f *flusher) close() { f.dir.Close() }
