package build

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"

	"github.com/heimwolke/heimwolke/packages/setupcode"
)

// entry is one file, folder or symbolic link of a file system being built.
type entry struct {
	path   string      // slash-separated, relative to the file system's root
	mode   fs.FileMode // permission bits plus fs.ModeDir or fs.ModeSymlink
	source string      // regular files: the file to copy, or "" to use data
	data   []byte
	target string // symbolic links: where the link points
}

func (e entry) size() (int64, error) {
	if e.source == "" {
		return int64(len(e.data)), nil
	}
	st, err := os.Stat(e.source)
	if err != nil {
		return 0, err
	}
	return st.Size(), nil
}

// tree collects entries and adds missing parent folders.
type tree struct {
	entries map[string]entry
}

func newTree() *tree { return &tree{entries: map[string]entry{}} }

func (t *tree) dir(p string) {
	for d := p; d != "." && d != "/" && d != ""; d = path.Dir(d) {
		if _, ok := t.entries[d]; !ok {
			t.entries[d] = entry{path: d, mode: fs.ModeDir | 0o755}
		}
	}
}

func (t *tree) add(e entry) {
	t.dir(path.Dir(e.path))
	t.entries[e.path] = e
}

func (t *tree) file(p string, mode fs.FileMode, source string) {
	t.add(entry{path: p, mode: mode, source: source})
}

func (t *tree) bytes(p string, mode fs.FileMode, data []byte) {
	t.add(entry{path: p, mode: mode, data: data})
}

func (t *tree) symlink(p, target string) {
	t.add(entry{path: p, mode: fs.ModeSymlink | 0o777, target: target})
}

// copyDir adds every file below src at dst, with modes normalized: the module
// cache stores files read-only, which must not leak into the image.
func (t *tree) copyDir(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := path.Join(dst, filepath.ToSlash(rel))
		switch {
		case d.IsDir():
			t.dir(target)
		case d.Type().IsRegular():
			t.file(target, 0o644, p)
		default:
			return fmt.Errorf("%s: only regular files and folders can be copied into the image", p)
		}
		return nil
	})
}

// sorted returns the entries with every folder before its contents, in
// byte order of the path.
func (t *tree) sorted() []entry {
	list := make([]entry, 0, len(t.entries))
	for _, e := range t.entries {
		list = append(list, e)
	}
	sort.Slice(list, func(i, j int) bool { return list[i].path < list[j].path })
	return list
}

// rootTree is the read-only root file system of an image.
func rootTree(binaries map[string]string, kernelDir string) (*tree, error) {
	t := newTree()
	// Mount points that gokrazy's init mounts over, and /etc.
	for _, d := range []string{"dev", "etc", "perm", "proc", "run", "sys", "tmp"} {
		t.dir(d)
	}
	for p, bin := range binaries {
		t.file(p, 0o755, bin)
	}
	// gokrazy sets the host name from this file verbatim, so no newline.
	t.bytes("etc/hostname", 0o644, []byte("heimwolke"))
	t.bytes("etc/hosts", 0o644, []byte("127.0.0.1 localhost heimwolke\n::1 localhost heimwolke\n"))
	// With resolv.conf pointing into /tmp, gokrazy's DHCP client can write
	// it; without the link, init mounts a tmpfs over /etc and hides the rest.
	t.symlink("etc/resolv.conf", "/tmp/resolv.conf")
	t.symlink("var", "/perm/var")

	lib := filepath.Join(kernelDir, "lib")
	if _, err := os.Stat(lib); err == nil {
		if err := t.copyDir(lib, "lib"); err != nil {
			return nil, fmt.Errorf("copying kernel modules: %w", err)
		}
	}
	return t, nil
}

// bootTree is the FAT boot partition: the kernel and its command line, and
// for the Raspberry Pi the firmware, every device tree and overlay, and
// config.txt.
func bootTree(tg Target, kernelDir, firmwareDir, cmdline string) (*tree, error) {
	t := newTree()
	t.file("vmlinuz", 0o644, filepath.Join(kernelDir, "vmlinuz"))
	t.bytes("cmdline.txt", 0o644, []byte(cmdline+"\n"))
	// A placeholder that `heimwolke-image flash` overwrites in place.
	t.bytes(setupcode.FileName, 0o644, setupcode.Placeholder())
	if firmwareDir == "" {
		return t, nil
	}

	t.bytes("config.txt", 0o644, []byte(rpiConfig))
	if err := addMatching(t, firmwareDir, "", func(name string) bool {
		return name == "bootcode.bin" || strings.HasSuffix(name, ".elf") || strings.HasSuffix(name, ".dat")
	}); err != nil {
		return nil, err
	}
	t.file("LICENCE.broadcom", 0o644, filepath.Join(firmwareDir, "LICENSE.broadcom"))
	if err := addMatching(t, kernelDir, "", func(name string) bool { return strings.HasSuffix(name, ".dtb") }); err != nil {
		return nil, err
	}
	if err := t.copyDir(filepath.Join(kernelDir, "overlays"), "overlays"); err != nil {
		return nil, fmt.Errorf("copying device tree overlays: %w", err)
	}
	return t, nil
}

func addMatching(t *tree, dir, dst string, match func(string) bool) error {
	list, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	n := 0
	for _, e := range list {
		if e.Type().IsRegular() && match(e.Name()) {
			t.file(path.Join(dst, e.Name()), 0o644, filepath.Join(dir, e.Name()))
			n++
		}
	}
	if n == 0 {
		return fmt.Errorf("no boot files found in %s", dir)
	}
	return nil
}

// rpiConfig is config.txt for every supported Raspberry Pi: the firmware
// starts the 64-bit kernel file vmlinuz with the matching device tree, which
// it picks by model from the bcm27xx-*.dtb files.
const rpiConfig = `# Heimwolke: boot configuration for the Raspberry Pi firmware
# (Pi 3B/3B+, 4B/400, 5, Zero 2 W).
arm_64bit=1
kernel=vmlinuz
# The serial console on the GPIO header (pins 8 and 10), 115200 baud.
enable_uart=1
disable_splash=1
# Leave little memory to the GPU: the box has no screen to drive.
gpu_mem=16
`
