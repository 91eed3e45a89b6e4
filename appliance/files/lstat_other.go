//go:build !linux

package files

import "os"

// lstatChild stats name in the folder dir, which f has open, without
// following a symbolic link. It returns false for anything but a regular
// file or a folder.
func lstatChild(dir *os.Root, _ *os.File, name string) (propfindEntry, bool, error) {
	fi, err := dir.Lstat(name)
	if err != nil {
		return propfindEntry{}, false, err
	}
	return newPropfindEntry(fi), fi.Mode().IsRegular() || fi.IsDir(), nil
}
