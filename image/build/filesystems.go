package build

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"github.com/heimwolke/heimwolke/image/squashfs"
	"github.com/heimwolke/heimwolke/packages/fat"
)

// writeFAT lays out the boot partition at offset and returns the bytes its
// files take.
func writeFAT(img io.WriterAt, offset, size int64, t *tree, volumeID uint32, modTime time.Time) (int64, error) {
	w, err := fat.NewWriter(fat.Options{
		Size:        size,
		VolumeLabel: "HEIMWOLKE",
		VolumeID:    volumeID,
		ModTime:     modTime,
	})
	if err != nil {
		return 0, err
	}
	var used int64
	for _, e := range t.sorted() {
		switch {
		case e.mode.IsDir():
			err = w.MkdirAll(e.path)
		case e.source == "":
			err = w.AddFile(e.path, e.data)
		default:
			var n int64
			n, err = e.size()
			if err == nil {
				err = w.AddFileFrom(e.path, n, openFile(e.source))
			}
		}
		if err != nil {
			return 0, err
		}
		n, _ := e.size()
		used += n
	}
	return used, w.WritePartition(img, offset)
}

func openFile(path string) func() (io.ReadCloser, error) {
	return func() (io.ReadCloser, error) { return os.Open(path) }
}

// writeSquashfs writes the root file system at offset and returns its size.
// The tree lists folders before their contents, as the writer needs.
func writeSquashfs(img io.WriterAt, offset, size int64, t *tree, modTime time.Time) (int64, error) {
	w, err := squashfs.NewWriter(io.NewOffsetWriter(img, offset), modTime, nil)
	if err != nil {
		return 0, err
	}
	for _, e := range t.sorted() {
		switch {
		case e.mode.IsDir():
			err = w.Mkdir(e.path, e.mode.Perm())
		case e.mode&fs.ModeSymlink != 0:
			err = w.Symlink(e.target, e.path)
		case e.source == "":
			err = w.AddFile(e.path, e.mode.Perm(), int64(len(e.data)), bytes.NewReader(e.data))
		default:
			err = addSquashfsFile(w, e)
		}
		if err != nil {
			return 0, err
		}
	}
	n, err := w.Flush()
	if err != nil {
		return 0, err
	}
	if n > size {
		return 0, fmt.Errorf("root file system is %d MiB, more than its %d MiB partition", n/mib, size/mib)
	}
	return n, nil
}

func addSquashfsFile(w *squashfs.Writer, e entry) error {
	f, err := os.Open(e.source)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	return w.AddFile(e.path, e.mode.Perm(), st.Size(), f)
}
