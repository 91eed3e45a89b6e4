// Package build lays out a complete, bootable Heimwolke disk image from the
// gokrazy kernel and firmware modules and our cross-compiled programs: an MBR
// with a FAT boot partition, two squashfs root partitions (A and B) and an
// ext4 /perm. The same source commit gives the same image, byte for byte.
package build

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/heimwolke/heimwolke/image/permfs"
)

// Options configures Build.
type Options struct {
	// Target is "rpi", "amd64" or "arm64".
	Target string
	// Out is the image file to write; it is replaced atomically.
	Out string
	// SourceDir is the root of the Heimwolke source tree; "" finds it from
	// the working folder.
	SourceDir string
	// Version is stamped into every program; "" uses git describe.
	Version string
	// ModTime is every file's time stamp; zero uses the commit time.
	ModTime time.Time
	// Progress receives one line per step; nil discards them.
	Progress io.Writer
}

// Result describes a built image.
type Result struct {
	Path    string
	Version string
	Size    int64
	SHA256  string
	Layout  Layout
	// RootSize and BootUsed are the bytes the root file system and the boot
	// files take inside their partitions.
	RootSize, BootUsed int64
}

// Build writes the image and returns what it wrote.
func Build(ctx context.Context, opts Options) (*Result, error) {
	tg, err := LookupTarget(opts.Target)
	if err != nil {
		return nil, err
	}
	if opts.Out == "" {
		return nil, fmt.Errorf("no output file given: pass --out FILE")
	}
	if st, err := os.Stat(opts.Out); err == nil && st.IsDir() {
		return nil, fmt.Errorf("output %s is a folder: name the image file, e.g. %s", opts.Out, filepath.Join(opts.Out, "heimwolke-"+tg.Name+".img"))
	}
	if st, err := os.Stat(filepath.Dir(opts.Out)); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("folder %s for the output does not exist: create it first", filepath.Dir(opts.Out))
	}
	if opts.SourceDir == "" {
		if opts.SourceDir, err = FindSourceDir("."); err != nil {
			return nil, err
		}
	} else if err := checkSourceDir(opts.SourceDir); err != nil {
		return nil, err
	}
	if opts.Version == "" {
		opts.Version = SourceVersion(ctx, opts.SourceDir)
	}
	if opts.ModTime.IsZero() {
		opts.ModTime = SourceTime(ctx, opts.SourceDir)
	}
	p := newProgress(opts.Progress, 6)
	p.printf("building Heimwolke %s image for %s", opts.Version, tg.Name)

	work, err := os.MkdirTemp("", "heimwolke-build-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)

	p.step("compiling %d programs for linux/%s", len(programs), tg.GOARCH)
	binaries, err := compilePrograms(ctx, opts.SourceDir, work, tg.GOARCH, opts.Version)
	if err != nil {
		return nil, err
	}

	p.step("finding kernel %s", tg.KernelModule)
	kernelDir, err := moduleDir(ctx, opts.SourceDir, tg.KernelModule)
	if err != nil {
		return nil, err
	}
	firmwareDir := ""
	if tg.FirmwareModule != "" {
		if firmwareDir, err = moduleDir(ctx, opts.SourceDir, tg.FirmwareModule); err != nil {
			return nil, err
		}
	}

	layout := newLayout(tg.Name)
	res := &Result{Path: opts.Out, Version: opts.Version, Size: layout.Size, Layout: layout}
	img, tmpPath, err := createImage(opts.Out, layout.Size)
	if err != nil {
		return nil, err
	}
	defer func() {
		img.Close()
		os.Remove(tmpPath) // fails harmlessly once renamed
	}()

	if err := writeImage(ctx, img, tg, layout, binaries, kernelDir, firmwareDir, opts, p, res); err != nil {
		return nil, err
	}

	p.step("checking and saving %s", opts.Out)
	if res.SHA256, err = fileSHA256(img); err != nil {
		return nil, err
	}
	if err := img.Sync(); err != nil {
		return nil, fmt.Errorf("writing %s: %w", tmpPath, err)
	}
	if err := img.Close(); err != nil {
		return nil, fmt.Errorf("writing %s: %w", tmpPath, err)
	}
	if err := os.Rename(tmpPath, opts.Out); err != nil {
		return nil, err
	}
	p.done("wrote %s: %d MiB, SHA-256 %s", opts.Out, layout.Size/mib, res.SHA256)
	return res, nil
}

func writeImage(ctx context.Context, img *os.File, tg Target, layout Layout, binaries map[string]string, kernelDir, firmwareDir string, opts Options, p *progress, res *Result) error {
	table, err := layout.Table.Marshal()
	if err != nil {
		return err
	}
	if _, err := img.WriteAt(table, 0); err != nil {
		return err
	}

	root, err := rootTree(binaries, kernelDir)
	if err != nil {
		return err
	}
	p.step("writing root file system A (squashfs, %d entries)", len(root.entries))
	if res.RootSize, err = writeSquashfs(img, layout.RootA, layout.RootSize, root, opts.ModTime); err != nil {
		return fmt.Errorf("writing root file system: %w", err)
	}
	p.printf("root file system: %.1f MiB of %d MiB", float64(res.RootSize)/mib, layout.RootSize/mib)

	cmdline := "root=PARTUUID=" + layout.RootPartUUID + " " + tg.Cmdline
	boot, err := bootTree(tg, kernelDir, firmwareDir, cmdline)
	if err != nil {
		return err
	}
	p.step("writing boot partition (FAT, %d entries)", len(boot.entries))
	if res.BootUsed, err = writeFAT(img, layout.Boot, layout.BootSize, boot, layout.Table.DiskSignature, opts.ModTime); err != nil {
		return fmt.Errorf("writing boot partition: %w", err)
	}
	p.printf("boot files: %.1f MiB of %d MiB", float64(res.BootUsed)/mib, layout.BootSize/mib)

	p.step("formatting /perm (ext4, %d MiB)", layout.PermSize/mib)
	return permfs.Make(img, layout.Perm, permfs.Options{
		Size:    layout.PermSize,
		Label:   "perm",
		Seed:    []byte(tg.Name),
		ModTime: opts.ModTime,
	})
}

// createImage makes a sparse temporary file of size bytes next to out, so
// that the final rename stays on one file system.
func createImage(out string, size int64) (*os.File, string, error) {
	f, err := os.CreateTemp(filepath.Dir(out), "."+filepath.Base(out)+".tmp-")
	if err != nil {
		return nil, "", fmt.Errorf("creating image next to %s: %w", out, err)
	}
	if err := f.Truncate(size); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, "", fmt.Errorf("sizing image to %d bytes: %w", size, err)
	}
	return f, f.Name(), nil
}

func fileSHA256(f *os.File) (string, error) {
	h := sha256.New()
	if _, err := io.Copy(h, io.NewSectionReader(f, 0, 1<<62)); err != nil {
		return "", fmt.Errorf("hashing image: %w", err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
