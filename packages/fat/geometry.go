// Package fat writes and reads the FAT16 file system of the image's boot
// partition, with VFAT long file names and subdirectories, as the Raspberry Pi
// firmware and gokrazy's in-place cmdline.txt update expect it. It is not a
// general FAT driver: it writes a new file system in one pass and reads files.
//
// Section names in comments refer to Microsoft's "FAT: General Overview of
// On-Disk Format", version 1.03.
package fat

import (
	"fmt"
)

// SectorSize is the only sector size this package writes, in bytes.
const SectorSize = 512

const (
	dirEntrySize = 32

	// DefaultRootEntries is the size of the fixed root directory, in
	// 32-byte entries, when Options.RootEntries is zero.
	DefaultRootEntries = 512

	// A FAT file system is FAT16 exactly when it has 4085 to 65524 data
	// clusters, because readers pick the FAT type from the cluster count
	// alone ("FAT Type Determination"). Linux, dosfstools and mtools do so.
	minClusters16 = 4085
	maxClusters16 = 65524

	// maxSectorsPerCluster limits clusters to 32 KiB, the maximum that the
	// overview allows ("Boot Sector and BPB"). Some systems accept 64 KiB.
	maxSectorsPerCluster = 64
)

// geometry is the layout of one partition, in sectors of SectorSize bytes:
// the boot sector, one FAT, the fixed root directory,
// then the data clusters, numbered from 2.
type geometry struct {
	totalSectors      uint32
	sectorsPerCluster uint32
	reservedSectors   uint32
	fatSectors        uint32
	rootSectors       uint32
	clusters          uint32
}

// newGeometry lays out a partition of size bytes with a root directory of
// rootEntries entries. It picks the smallest cluster size (512 B to 32 KiB)
// that keeps the cluster count within FAT16's range of 4085 to 65524,
// because smaller clusters waste less space at the end of each file. For
// example, 100 MiB gives 4 sectors (2 KiB) per cluster and 51,141 clusters.
func newGeometry(size int64, rootEntries int) (geometry, error) {
	if size <= 0 || size%SectorSize != 0 {
		return geometry{}, fmt.Errorf("partition size %d bytes is not a positive multiple of %d bytes", size, SectorSize)
	}
	if size/SectorSize > 0xFFFFFFFF {
		return geometry{}, fmt.Errorf("partition size %d bytes exceeds the 32-bit sector count of FAT16", size)
	}
	total := uint32(size / SectorSize)

	var g geometry
	for spc := uint32(1); spc <= maxSectorsPerCluster; spc *= 2 {
		var ok bool
		g, ok = layoutGeometry(total, spc, rootEntries)
		if ok && g.clusters >= minClusters16 && g.clusters <= maxClusters16 {
			return g, nil
		}
		if ok && g.clusters < minClusters16 {
			break
		}
	}

	lo, hi := sizeRange(rootEntries)
	return geometry{}, fmt.Errorf("partition size %d bytes gives no FAT16 layout: with %d root directory entries, FAT16 needs %d to %d bytes (%d to %d clusters of 512 bytes to 32 KiB)",
		size, rootEntries, lo, hi, minClusters16, maxClusters16)
}

// layoutGeometry computes the layout for total sectors with spc sectors per
// cluster. It reports false when the metadata alone does not fit.
func layoutGeometry(total, spc uint32, rootEntries int) (geometry, bool) {
	g := geometry{
		totalSectors:      total,
		sectorsPerCluster: spc,
		reservedSectors:   1,
		rootSectors:       uint32((rootEntries*dirEntrySize + SectorSize - 1) / SectorSize),
	}

	// Size the FAT for the clusters that the whole partition could contain.
	// That is slightly more than the clusters left after the metadata, so
	// the FAT may end in a few unused sectors. Readers accept that, because
	// the cluster count comes from the data area, not from the FAT size.
	g.fatSectors = uint32((2*(uint64(total/spc)+2) + SectorSize - 1) / SectorSize)

	meta := g.reservedSectors + g.fatSectors + g.rootSectors
	if meta >= total {
		return geometry{}, false
	}
	g.clusters = (total - meta) / spc
	return g, true
}

// sizeRange returns the smallest and the largest partition size in bytes
// that newGeometry accepts for rootEntries.
func sizeRange(rootEntries int) (lo, hi int64) {
	for total := uint32(minClusters16); ; total++ {
		g, ok := layoutGeometry(total, 1, rootEntries)
		if ok && g.clusters >= minClusters16 {
			lo = int64(total) * SectorSize
			break
		}
	}

	// The cluster count never decreases as the partition grows, because the
	// FAT grows by at most one sector per added sector. So the first size
	// that fits, walking down from above the limit, is the largest.
	start := uint32((maxClusters16+1)*maxSectorsPerCluster) + 4096
	for total := start; total > 0; total-- {
		g, ok := layoutGeometry(total, maxSectorsPerCluster, rootEntries)
		if ok && g.clusters <= maxClusters16 {
			hi = int64(total) * SectorSize
			break
		}
	}
	return lo, hi
}

func (g geometry) clusterSize() int64 { return int64(g.sectorsPerCluster) * SectorSize }

func (g geometry) fatOffset() int64 { return int64(g.reservedSectors) * SectorSize }

func (g geometry) rootOffset() int64 {
	return int64(g.reservedSectors+g.fatSectors) * SectorSize
}

func (g geometry) dataOffset() int64 {
	return int64(g.reservedSectors+g.fatSectors+g.rootSectors) * SectorSize
}

// clusterOffset returns the byte offset of cluster c within the partition.
func (g geometry) clusterOffset(c uint32) int64 {
	return g.dataOffset() + int64(c-2)*g.clusterSize()
}

// clustersFor returns the number of clusters that n bytes occupy.
func (g geometry) clustersFor(n int64) int64 {
	return (n + g.clusterSize() - 1) / g.clusterSize()
}
