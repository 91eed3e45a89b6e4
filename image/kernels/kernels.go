//go:build tools

// Package kernels records the gokrazy kernel and firmware modules in go.mod, so
// that the image builder can find their files in the module cache. The modules
// contain no Go code that is linked into any program.
package kernels

import (
	_ "github.com/gokrazy/firmware"
	_ "github.com/gokrazy/kernel.amd64"
	_ "github.com/gokrazy/kernel.arm64"
	_ "github.com/gokrazy/kernel.rpi"
)
