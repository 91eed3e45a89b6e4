package build

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/heimwolke/heimwolke/image/mbr"
	"github.com/heimwolke/heimwolke/packages/fat"
)

// BootFiles are the files that QEMU needs to start an image directly: the
// image has no BIOS or EFI boot loader, so QEMU loads its kernel.
type BootFiles struct {
	Kernel  string // path of the extracted vmlinuz
	Cmdline string // contents of cmdline.txt, trimmed
	// GOARCH is the kernel's architecture, "amd64" or "arm64", read from
	// its header.
	GOARCH string
	// RaspberryPi is set when the boot partition carries the Pi's
	// config.txt, so the image was built with --target rpi.
	RaspberryPi bool
}

// ExtractBoot copies vmlinuz out of the image's boot partition into dir and
// reads cmdline.txt.
func ExtractBoot(imagePath, dir string) (BootFiles, error) {
	f, err := os.Open(imagePath)
	if errors.Is(err, fs.ErrNotExist) {
		return BootFiles{}, fmt.Errorf("image %s not found: build one with make image or heimwolke-image build", imagePath)
	}
	if err != nil {
		return BootFiles{}, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return BootFiles{}, err
	}

	sector := make([]byte, mbr.SectorSize)
	if _, err := f.ReadAt(sector, 0); err != nil || sector[510] != 0x55 || sector[511] != 0xaa {
		return BootFiles{}, fmt.Errorf("%s has no MBR partition table (%d bytes): is it a Heimwolke image?", imagePath, st.Size())
	}
	bootStart := int64(binary.LittleEndian.Uint32(sector[446+8:])) * mbr.SectorSize
	permEnd := (int64(binary.LittleEndian.Uint32(sector[446+48+8:])) + int64(binary.LittleEndian.Uint32(sector[446+48+12:]))) * mbr.SectorSize
	if st.Size() < permEnd {
		return BootFiles{}, fmt.Errorf("%s is %d MiB, but its partitions need %d MiB: the image is truncated, build or copy it again", imagePath, st.Size()>>20, permEnd>>20)
	}

	kernel, err := fat.ReadFile(f, bootStart, "vmlinuz")
	if err != nil {
		return BootFiles{}, fmt.Errorf("reading vmlinuz from the boot partition of %s: %w", imagePath, err)
	}
	cmdline, err := fat.ReadFile(f, bootStart, "cmdline.txt")
	if err != nil {
		return BootFiles{}, fmt.Errorf("reading cmdline.txt from the boot partition of %s: %w", imagePath, err)
	}
	arch, err := kernelArch(kernel)
	if err != nil {
		return BootFiles{}, fmt.Errorf("vmlinuz in %s: %w", imagePath, err)
	}
	kernelPath := filepath.Join(dir, "vmlinuz")
	if err := os.WriteFile(kernelPath, kernel, 0o644); err != nil {
		return BootFiles{}, err
	}
	_, configErr := fat.ReadFile(f, bootStart, "config.txt")
	return BootFiles{Kernel: kernelPath, Cmdline: strings.TrimSpace(string(cmdline)), GOARCH: arch, RaspberryPi: configErr == nil}, nil
}

// kernelArch tells an x86 bzImage from an arm64 Image by their boot
// protocol magic numbers: "HdrS" at byte 0x202 (Documentation/arch/x86/boot.rst)
// and "ARM\x64" at byte 0x38 (Documentation/arch/arm64/booting.rst).
func kernelArch(kernel []byte) (string, error) {
	switch {
	case len(kernel) > 0x206 && string(kernel[0x202:0x206]) == "HdrS":
		return "amd64", nil
	case len(kernel) > 0x3c && string(kernel[0x38:0x3c]) == "ARM\x64":
		return "arm64", nil
	}
	return "", errors.New("not an x86 or arm64 Linux kernel")
}
