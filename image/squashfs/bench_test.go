package squashfs_test

import (
	"bytes"
	"cmp"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// mixedTree returns up to 61 MiB of real files shaped like a root file
// system, read from the Go installation that runs the benchmark: up to
// 40 MiB of executables (bin and pkg/tool), 20 MiB of Go source files and
// the already compressed time zone archive.
func mixedTree(b *testing.B) (tree []entry, total int64) {
	b.Helper()
	out, err := exec.Command("go", "env", "GOROOT").Output()
	if err != nil {
		b.Skipf("go env GOROOT: %v", err)
	}
	goroot := string(bytes.TrimSpace(out))

	dirs := map[string]bool{}
	add := func(rel string, data []byte, mode fs.FileMode) {
		for dir := path.Dir(rel); dir != "." && !dirs[dir]; dir = path.Dir(dir) {
			dirs[dir] = true
		}
		tree = append(tree, entry{path: rel, kind: kindFile, mode: mode, data: data})
		total += int64(len(data))
	}
	collect := func(sub string, limit int64, mode fs.FileMode, keep func(name string) bool) {
		var taken int64
		err := filepath.WalkDir(filepath.Join(goroot, sub), func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() || !keep(d.Name()) {
				return err
			}
			data, err := os.ReadFile(p)
			if err != nil || taken+int64(len(data)) > limit {
				return err // a file over the limit is left out
			}
			rel, _ := filepath.Rel(goroot, p)
			add(filepath.ToSlash(rel), data, mode)
			taken += int64(len(data))
			return nil
		})
		if err != nil {
			b.Fatal(err)
		}
	}
	all := func(string) bool { return true }
	collect("bin", 40<<20, 0o755, all)
	collect("pkg/tool", 40<<20-total, 0o755, all)
	collect("src", 20<<20, 0o644, func(name string) bool { return strings.HasSuffix(name, ".go") })
	collect("lib/time", 1<<20, 0o644, func(name string) bool { return name == "zoneinfo.zip" })

	// Directories first, parents before children, as the Writer needs.
	var dirEntries []entry
	for dir := range dirs {
		dirEntries = append(dirEntries, entry{path: dir, kind: kindDir, mode: 0o755})
	}
	slices.SortFunc(dirEntries, func(a, b entry) int {
		return cmp.Or(strings.Count(a.path, "/")-strings.Count(b.path, "/"), strings.Compare(a.path, b.path))
	})
	return append(dirEntries, tree...), total
}

// BenchmarkWriteMixedTree writes the tree of mixedTree with this package
// and, for comparison on the same machine, with mksquashfs from
// squashfs-tools (gzip, no fragments) at its default level 9 and at this
// package's level 6, as far as mksquashfs is installed.
func BenchmarkWriteMixedTree(b *testing.B) {
	tree, total := mixedTree(b)

	b.Run("squashfs", func(b *testing.B) {
		b.SetBytes(total)
		var size int64
		for b.Loop() {
			_, size = writeImage(b, tree, nil)
		}
		b.ReportMetric(float64(total)/(1<<20), "tree-MiB")
		b.ReportMetric(float64(size)/(1<<20), "image-MiB")
	})

	for _, level := range []string{"9", "6"} {
		b.Run("mksquashfs-level-"+level, func(b *testing.B) {
			mksquashfs, err := exec.LookPath("mksquashfs")
			if err != nil {
				b.Skip("mksquashfs not found: install the Debian package squashfs-tools")
			}
			src := filepath.Join(b.TempDir(), "src")
			writeTreeToDisk(b, src, tree)
			img := filepath.Join(b.TempDir(), "ref.squashfs")
			b.SetBytes(total)
			for b.Loop() {
				cmd := exec.Command(mksquashfs, src, img, "-noappend", "-comp", "gzip", "-Xcompression-level", level,
					"-no-fragments", "-all-root", "-quiet", "-no-progress")
				if out, err := cmd.CombinedOutput(); err != nil {
					b.Fatalf("mksquashfs: %v\n%s", err, out)
				}
			}
			info, err := os.Stat(img)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(info.Size())/(1<<20), "image-MiB")
		})
	}
}

func writeTreeToDisk(b *testing.B, root string, tree []entry) {
	b.Helper()
	if err := os.Mkdir(root, 0o755); err != nil {
		b.Fatal(err)
	}
	for _, e := range tree {
		p := filepath.Join(root, filepath.FromSlash(e.path))
		var err error
		switch e.kind {
		case kindDir:
			err = os.Mkdir(p, e.mode)
		case kindFile:
			err = os.WriteFile(p, e.data, e.mode)
		case kindSymlink:
			err = os.Symlink(e.target, p)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}
