//go:build !linux

package webui

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// measureStorage returns the size of the file system that holds path. The
// BSDs and macOS count blocks in units of f_bsize.
func measureStorage(path string) (storageUsage, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return storageUsage{}, fmt.Errorf("measuring %s: %w", path, err)
	}
	unit := uint64(st.Bsize)
	return storageUsage{
		total:     st.Blocks * unit,
		used:      (st.Blocks - st.Bfree) * unit,
		available: uint64(st.Bavail) * unit,
	}, nil
}
