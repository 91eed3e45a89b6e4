//go:build !linux

package website

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// exchangeFolders is not available outside Linux; swapIn falls back to two
// renames.
func exchangeFolders(a, b string) error {
	return errors.New("exchanging folders is only supported on Linux")
}

// flusher makes an unpacked site durable with an fsync of every file and
// folder.
type flusher struct {
	names []string
}

func startFlush(string) (*flusher, error) { return &flusher{}, nil }

// add records a path below the staging folder that finish must flush.
func (f *flusher) add(name string) { f.names = append(f.names, name) }

func (f *flusher) finish(root *os.Root) error {
	for _, name := range f.names {
		file, err := root.Open(filepath.FromSlash(name))
		if err != nil {
			return fmt.Errorf("website: flushing %q: %w", name, err)
		}
		err = file.Sync()
		file.Close()
		if err != nil {
			return fmt.Errorf("website: flushing %q: %w", name, err)
		}
	}
	return nil
}

func (f *flusher) close() {}
