//go:build !linux

package flash

import (
	"context"
	"errors"
)

// Flash returns an error on systems other than Linux, because the checks
// for mounted and system disks read Linux's sysfs and /proc.
func Flash(ctx context.Context, opts Options) error {
	return errors.New("flashing a device is only supported on Linux; on another system, write the image with a tool such as Raspberry Pi Imager")
}
