package files

import (
	"encoding/xml"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"sync"
	"syscall"

	"golang.org/x/net/webdav"
)

// usage counts the bytes of the regular files in one folder tree. It walks
// the tree once and then adds what uploads write. A delete makes it walk
// again on next use, because it does not know the sizes that went.
type usage struct {
	mu    sync.Mutex
	known bool
	bytes int64
}

// current returns the bytes in use, walking root when they are unknown.
func (u *usage) current(root *os.Root) (int64, error) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if u.known {
		return u.bytes, nil
	}
	total, err := treeSize(root)
	if err != nil {
		return 0, err
	}
	u.bytes, u.known = total, true
	return total, nil
}

// add counts n more bytes if they fit under quota (zero means no limit).
func (u *usage) add(root *os.Root, n, quota int64) error {
	if _, err := u.current(root); err != nil {
		return err
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	if quota > 0 && u.bytes+n > quota {
		return errQuotaExceeded
	}
	u.bytes += n
	return nil
}

func (u *usage) release(n int64) {
	u.mu.Lock()
	u.bytes -= n
	u.mu.Unlock()
}

func (u *usage) forget() {
	u.mu.Lock()
	u.known = false
	u.mu.Unlock()
}

func treeSize(root *os.Root) (int64, error) {
	var total int64
	err := fs.WalkDir(root.FS(), ".", func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			total += info.Size()
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("measuring folder size: %w", err)
	}
	return total, nil
}

// reserve counts n bytes of an upload against the folder's quota. The
// file that the upload replaces still counts until the rename, so its size
// is headroom.
func (fsys *rootFS) reserve(n, replaced int64) error {
	quota := fsys.quota
	if quota > 0 {
		quota += replaced
	}
	return fsys.usage.add(fsys.root, n, quota)
}

// freeBytes returns the bytes that unprivileged writers may still use on
// the file system that holds dir.
func freeBytes(dir string) (int64, error) {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return 0, fmt.Errorf("%w of %s: %w", errFreeSpaceUnknown, dir, err)
	}
	return int64(st.Bavail) * int64(st.Bsize), nil
}

var errFreeSpaceUnknown = errors.New("reading free space failed")

// checkFreeSpace returns errFreeReserve when writing n more bytes would
// leave less than the reserve free on the folder's file system. Bytes
// that uploads have written already count as used, because ext4 (with
// its delayed allocations) and tmpfs subtract them from the free space at
// once. Concurrent uploads can still overshoot by one write each.
func (fsys *rootFS) checkFreeSpace(n int64) error {
	if fsys.freeReserve <= 0 || n <= 0 {
		return nil
	}
	free, err := freeBytes(fsys.dir)
	if err != nil {
		return err
	}
	if free-n < fsys.freeReserve {
		return errFreeReserve
	}
	return nil
}

// available returns the bytes that may still be written: what the quota
// leaves, but no more than the file system has free above the reserve.
func (fsys *rootFS) available(used int64) (int64, error) {
	free, err := freeBytes(fsys.dir)
	if err != nil {
		return 0, err
	}
	free = max(free-max(fsys.freeReserve, 0), 0)
	if fsys.quota > 0 {
		free = min(free, max(fsys.quota-used, 0))
	}
	return free, nil
}

// The quota properties of RFC 4331 section 3 and 4.
var (
	quotaAvailable = xml.Name{Space: "DAV:", Local: "quota-available-bytes"}
	quotaUsed      = xml.Name{Space: "DAV:", Local: "quota-used-bytes"}
)

func (fsys *rootFS) addQuotaProps(props map[xml.Name]webdav.Property) error {
	used, err := fsys.usage.current(fsys.root)
	if err != nil {
		fsys.req.internalErr = true
		return err
	}
	avail, err := fsys.available(used)
	if err != nil {
		fsys.req.internalErr = true
		return err
	}
	props[quotaUsed] = webdav.Property{XMLName: quotaUsed, InnerXML: []byte(strconv.FormatInt(used, 10))}
	props[quotaAvailable] = webdav.Property{XMLName: quotaAvailable, InnerXML: []byte(strconv.FormatInt(avail, 10))}
	return nil
}

// exceedsQuota reports whether an upload of n bytes cannot fit, before
// its body is read. Uploads of unknown length are checked as they are
// written.
func (fsys *rootFS) exceedsQuota(rel string, n int64) bool {
	if n <= 0 || fsys.quota <= 0 {
		return false
	}
	used, err := fsys.usage.current(fsys.root)
	return err == nil && used+n-fsys.regularSize(rel) > fsys.quota
}

// regularSize returns the size of rel if it is a regular file, else 0.
func (fsys *rootFS) regularSize(rel string) int64 {
	fi, err := fsys.root.Lstat(rel)
	if err != nil || !fi.Mode().IsRegular() {
		return 0
	}
	return fi.Size()
}
