package build

import (
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/heimwolke/heimwolke/image/fat"
	"github.com/heimwolke/heimwolke/image/mbr"
)

// BootFiles are the files that QEMU needs to start an image directly: the
// image has no BIOS or EFI boot loader, so QEMU loads its kernel.
type BootFiles struct {
	Kernel  string // path of the extracted vmlinuz
	Cmdline string // contents of cmdline.txt, trimmed
}

// ExtractBoot copies vmlinuz out of the image's boot partition into dir and
// reads cmdline.txt.
func ExtractBoot(imagePath, dir string) (BootFiles, error) {
	f, err := os.Open(imagePath)
	if err != nil {
		return BootFiles{}, err
	}
	defer f.Close()

	sector := make([]byte, mbr.SectorSize)
	if _, err := f.ReadAt(sector, 0); err != nil {
		return BootFiles{}, fmt.Errorf("reading partition table of %s: %w", imagePath, err)
	}
	if sector[510] != 0x55 || sector[511] != 0xaa {
		return BootFiles{}, fmt.Errorf("%s has no MBR partition table: is it a Heimwolke image?", imagePath)
	}
	bootStart := int64(binary.LittleEndian.Uint32(sector[446+8:])) * mbr.SectorSize

	kernel, err := fat.ReadFile(f, bootStart, "vmlinuz")
	if err != nil {
		return BootFiles{}, fmt.Errorf("reading vmlinuz from the boot partition of %s: %w", imagePath, err)
	}
	cmdline, err := fat.ReadFile(f, bootStart, "cmdline.txt")
	if err != nil {
		return BootFiles{}, fmt.Errorf("reading cmdline.txt from the boot partition of %s: %w", imagePath, err)
	}
	kernelPath := filepath.Join(dir, "vmlinuz")
	if err := os.WriteFile(kernelPath, kernel, 0o644); err != nil {
		return BootFiles{}, err
	}
	return BootFiles{Kernel: kernelPath, Cmdline: strings.TrimSpace(string(cmdline))}, nil
}
