//go:build !linux

package growperm

import (
	"context"
	"errors"
	"log/slog"
)

// Grow is only implemented on Linux, the only system the box runs.
func Grow(ctx context.Context, disk, permMount string, log *slog.Logger) (Result, error) {
	return Result{Disk: disk}, errors.ErrUnsupported
}
