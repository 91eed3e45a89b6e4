package flash

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"time"

	"github.com/heimwolke/heimwolke/packages/setupcode"
)

// Flash writes the image opts.Image to the start of opts.Device and verifies
// it by reading it back. Before writing, it rejects a device that is missing,
// not a whole-disk block device, contains the running system, is in use
// (mounted, swap, device mapper or md RAID) or is smaller than the image.
// Unless opts.Yes is set, it then shows the device and reads a confirmation
// from opts.In. Progress goes to opts.Out. After writing a block device, Flash
// makes the kernel re-read its partition table. Cancelling ctx stops the
// write between two chunks of 4 MiB and leaves a partial image on the device.
func Flash(ctx context.Context, opts Options) error {
	opts = opts.withDefaults()
	if opts.Image == "" {
		return errors.New("no image given: set the path of the disk image to write")
	}
	if opts.Device == "" {
		return errors.New("no device given: set the whole disk of the SD card or USB stick, such as /dev/sdb (lsblk lists the disks)")
	}

	img, err := openImage(opts.Image)
	if err != nil {
		return err
	}
	defer img.file.Close()
	if err := checkImage(img, opts.SetupCode != ""); err != nil {
		return err
	}

	h := localHost()
	t, err := h.inspectTarget(opts.Device, opts.AllowRegularFile)
	if err != nil {
		return err
	}
	if err := checkTarget(h, t, img); err != nil {
		return err
	}

	if !opts.Yes {
		if err := confirm(opts.In, opts.Out, t, img.path, img.size); err != nil {
			return err
		}
	}
	return writeTarget(ctx, t, img, opts)
}

func openImage(path string) (image, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return image{}, fmt.Errorf("image %s not found: build one with make image or heimwolke-image build", path)
	}
	if err != nil {
		return image{}, fmt.Errorf("opening image: %w", err)
	}
	info, err := f.Stat()
	if err != nil {
		f.Close()
		return image{}, fmt.Errorf("opening image: %w", err)
	}
	if !info.Mode().IsRegular() || info.Size() == 0 {
		f.Close()
		return image{}, fmt.Errorf("opening image: %s is not a regular file with content; build an image first", path)
	}
	return image{file: f, path: path, size: info.Size()}, nil
}

// checkImage rejects, before anything is written, an image that lacks the
// MBR boot partition and padded setup-code.txt that a setup code needs:
// a wrong or compressed file would otherwise overwrite the card first.
func checkImage(img image, setupCode bool) error {
	if !setupCode {
		return nil
	}
	if err := setupcode.CheckImage(img.file); err != nil {
		return fmt.Errorf("image %s: %w; nothing was written", img.path, err)
	}
	return nil
}

func checkTarget(h host, t target, img image) error {
	if t.block {
		return h.checkBlockDevice(t, img.size)
	}
	imgInfo, err := img.file.Stat()
	if err != nil {
		return fmt.Errorf("opening image: %w", err)
	}
	if os.SameFile(imgInfo, t.info) {
		return fmt.Errorf("image %s and device %s are the same file; name another device", img.path, t.path)
	}
	return nil
}

// writeSetupCode puts code into setup-code.txt on the boot partition that
// was just written, after the image's checksum was verified, and flushes it.
func writeSetupCode(dev *os.File, t target, code string) error {
	boot, err := setupcode.BootOffset(dev)
	if err != nil {
		return fmt.Errorf("writing the setup code to %s: %w", t.path, err)
	}
	if err := setupcode.Write(dev, boot, code); err != nil {
		return fmt.Errorf("writing the setup code to %s: %w", t.path, err)
	}
	return flushTarget(dev, t)
}

// writeTarget writes, flushes and verifies the image on t and, for a block
// device, lets the kernel re-read the partition table.
func writeTarget(ctx context.Context, t target, img image, opts Options) error {
	start := time.Now()
	dev, err := openTarget(t)
	if err != nil {
		return err
	}
	defer dev.Close()

	sums, err := writeImage(ctx, dev, t, img, opts.Out)
	if err != nil {
		return err
	}
	if err := flushTarget(dev, t); err != nil {
		return err
	}
	if err := verifyImage(ctx, dev, t, img, sums, opts.Out); err != nil {
		return err
	}
	if opts.SetupCode != "" {
		if err := writeSetupCode(dev, t, opts.SetupCode); err != nil {
			return err
		}
	}
	if t.block {
		if err := rereadPartitionTable(dev, t, opts.Logger); err != nil {
			return err
		}
	}
	if err := dev.Close(); err != nil {
		return fmt.Errorf("closing %s: %w", t.path, err)
	}

	opts.Logger.Info("image written", "device", t.path, "image", img.path, "bytes", img.size,
		"sha256", hex.EncodeToString(sums.whole[:]), "duration", time.Since(start).Round(time.Millisecond))
	return nil
}
