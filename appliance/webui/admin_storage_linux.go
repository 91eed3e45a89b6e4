package webui

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// measureStorage returns the size of the file system that holds path.
// Linux counts f_blocks, f_bfree and f_bavail in units of f_frsize
// (statfs(2)), as df does.
func measureStorage(path string) (storageUsage, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(path, &st); err != nil {
		return storageUsage{}, fmt.Errorf("measuring %s: %w", path, err)
	}
	unit := uint64(st.Frsize)
	if unit == 0 {
		unit = uint64(st.Bsize)
	}
	return storageUsage{
		total:     st.Blocks * unit,
		used:      (st.Blocks - st.Bfree) * unit,
		available: st.Bavail * unit,
	}, nil
}
