// Package flash writes a Heimwolke disk image to an SD card or USB stick and
// verifies it by reading it back. It rejects targets that are mounted, that hold
// the running system or that are smaller than the image; building images is not
// its job.
package flash

import (
	"errors"
	"io"
	"log/slog"
	"os"
)

// Options configures Flash.
type Options struct {
	// Image is the path of the raw disk image to write.
	Image string

	// Device is the path of the target: a whole-disk block device such as
	// /dev/sdb, or a symlink to one such as /dev/disk/by-id/usb-....
	Device string

	// SetupCode, when not empty, is written into setup-code.txt on the
	// card's boot partition after the image is verified, and the wizard
	// then asks for it (see packages/setupcode).
	SetupCode string

	// Yes skips the confirmation prompt.
	Yes bool

	// In is read for one line that confirms the write. It is not read when Yes
	// is set; a nil In without Yes is an error.
	In io.Reader

	// Out receives the prompt and the progress lines. Nil discards them.
	Out io.Writer

	// AllowRegularFile accepts an existing regular file as Device, for tests
	// and for writing a copy of the image. The default rejects regular files.
	AllowRegularFile bool

	// Logger receives events that do not fail the flash, such as a partition
	// table that the kernel could not re-read. Nil means slog.Default().
	Logger *slog.Logger
}

// Errors that callers can tell apart with errors.Is. Flash wraps one of them
// when a check before writing rejects the device, when the confirmation is
// missing or negative, and when verification fails. The message names the
// device and what to do next.
var (
	ErrNotFound       = errors.New("device not found")
	ErrNotBlockDevice = errors.New("not a block device")
	ErrPartition      = errors.New("not a whole disk")
	ErrInUse          = errors.New("device in use")
	ErrSystemDisk     = errors.New("device is the system disk")
	ErrTooSmall       = errors.New("device smaller than the image")
	ErrAborted        = errors.New("flash aborted")
	ErrVerify         = errors.New("verification failed")
)

// target describes the device (or regular file) that Flash writes to.
type target struct {
	// path is Options.Device as given, for messages.
	path string

	// resolved is path with every symlink resolved.
	resolved string

	// info is the result of os.Stat on resolved.
	info os.FileInfo

	// block is true for a block device and false for a regular file.
	block bool

	// name is the kernel's name of a block device (the folder name under
	// /sys/class/block), such as "sdb" or "loop3". It is empty for a regular file.
	name string

	// size is the capacity in bytes.
	size int64

	// model is a human-readable description such as the model that the
	// device reports, or "" when none is known.
	model string
}

func (o Options) withDefaults() Options {
	if o.Out == nil {
		o.Out = io.Discard
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	return o
}
