// Package permfs makes the empty ext4 file system of the image's /perm
// partition. gokrazy never formats /perm itself, so the image must carry a
// formatted one. The box grows it online to the whole card at first boot, using
// the reserved group descriptor blocks of the resize_inode feature.
package permfs

import (
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/ext4"
	"github.com/google/uuid"
)

// Options describes the file system to make.
type Options struct {
	// Size is the partition size in bytes, a multiple of 4 KiB.
	Size int64
	// Label is the volume name (at most 16 bytes).
	Label string
	// Seed makes the file system UUID and directory hash seed; the same seed
	// gives the same bytes.
	Seed []byte
	// ModTime replaces every time stamp that go-diskfs takes from the clock.
	ModTime time.Time
}

// MinSize is the smallest file system Make accepts: the resize inode needs a
// backup block group, so at least two groups of 128 MiB.
const MinSize = 256 << 20

// uuidRandMu serializes Make calls, because go-diskfs draws the hash seed from
// the uuid package's process-wide random source, which Make swaps out.
var uuidRandMu sync.Mutex

// Make writes the file system into f at byte offset start. After go-diskfs
// has made it, Make reorders the resize inode's double-indirect block so that
// Linux can grow the file system online, and sets every time stamp to
// opts.ModTime. It returns an error for a size whose last block group cannot
// hold its superblock and GDT backup.
func Make(f *os.File, start int64, opts Options) error {
	if opts.Size%4096 != 0 || opts.Size < MinSize {
		return fmt.Errorf("perm file system size %d: want a multiple of 4096 of at least %d", opts.Size, MinSize)
	}
	rand := &seededReader{seed: sha256.Sum256(append([]byte("heimwolke perm "), opts.Seed...))}
	fsUUID, err := uuid.NewRandomFromReader(rand)
	if err != nil {
		return fmt.Errorf("making file system UUID: %w", err)
	}

	uuidRandMu.Lock()
	uuid.SetRand(rand)
	_, err = ext4.Create(file.New(f, false), opts.Size, start, 512, &ext4.Params{
		UUID:            &fsUUID,
		SectorsPerBlock: 8, // 4 KiB blocks, as mkfs.ext4 picks for this size
		VolumeName:      opts.Label,
	})
	uuid.SetRand(nil)
	uuidRandMu.Unlock()
	if err != nil {
		return fmt.Errorf("creating ext4 for /perm: %w", err)
	}

	if err := fixResizeInode(&offsetFile{f, start}); err != nil {
		return fmt.Errorf("fixing ext4 resize inode: %w", err)
	}
	if err := fixTimes(&offsetFile{f, start}, uint32(opts.ModTime.Unix())); err != nil {
		return fmt.Errorf("fixing ext4 time stamps: %w", err)
	}
	return nil
}

// seededReader is a deterministic stream: SHA-256 over the seed and a counter.
type seededReader struct {
	seed    [32]byte
	counter uint64
	buf     []byte
}

func (r *seededReader) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		if len(r.buf) == 0 {
			var block [40]byte
			copy(block[:], r.seed[:])
			binary.LittleEndian.PutUint64(block[32:], r.counter)
			r.counter++
			sum := sha256.Sum256(block[:])
			r.buf = sum[:]
		}
		c := copy(p[n:], r.buf)
		r.buf = r.buf[c:]
		n += c
	}
	return n, nil
}

type offsetFile struct {
	f     *os.File
	start int64
}

func (o *offsetFile) ReadAt(p []byte, off int64) (int, error) { return o.f.ReadAt(p, o.start+off) }

func (o *offsetFile) WriteAt(p []byte, off int64) (int, error) {
	return o.f.WriteAt(p, o.start+off)
}

type readWriterAt interface {
	io.ReaderAt
	io.WriterAt
}

// Superblock fields (offsets within the superblock), from the ext4 disk
// layout documented in the Linux kernel's Documentation/filesystems/ext4.
const (
	sbBlocksCountLo   = 0x04
	sbFirstDataBlock  = 0x14
	sbLogBlockSize    = 0x18
	sbBlocksPerGroup  = 0x20
	sbMagic           = 0x38
	sbFirstIno        = 0x54
	sbInodeSize       = 0x58
	sbFeatureRoCompat = 0x64
	sbMtime           = 0x2c
	sbWtime           = 0x30
	sbLastCheck       = 0x40
	sbMkfsTime        = 0x108
	sbTimesHi         = 0x274 // s_wtime_hi, s_mtime_hi, s_mkfs_time_hi, s_lastcheck_hi
	sbDescSize        = 0xfe

	roCompatGdtCsum      = 0x10
	roCompatMetadataCsum = 0x400
)

// fixTimes overwrites the creation, mount and write times in the superblock
// and its backups, and the times of the reserved inodes, with t. Without
// checksum features no checksum covers these fields, which fixTimes checks.
func fixTimes(dev readWriterAt, t uint32) error {
	sb := make([]byte, 1024)
	if _, err := dev.ReadAt(sb, 1024); err != nil {
		return err
	}
	if binary.LittleEndian.Uint16(sb[sbMagic:]) != 0xef53 {
		return errors.New("no ext4 superblock at byte 1024")
	}
	if rc := binary.LittleEndian.Uint32(sb[sbFeatureRoCompat:]); rc&(roCompatGdtCsum|roCompatMetadataCsum) != 0 {
		return fmt.Errorf("ro_compat features %#x include checksums, which changing times would break", rc)
	}
	blockSize := int64(1024) << binary.LittleEndian.Uint32(sb[sbLogBlockSize:])
	blocks := int64(binary.LittleEndian.Uint32(sb[sbBlocksCountLo:]))
	firstData := int64(binary.LittleEndian.Uint32(sb[sbFirstDataBlock:]))
	perGroup := int64(binary.LittleEndian.Uint32(sb[sbBlocksPerGroup:]))

	for g := int64(0); firstData+g*perGroup < blocks; g++ {
		off := (firstData + g*perGroup) * blockSize
		if g == 0 {
			off = 1024
		}
		if err := fixSuperblockTimes(dev, off, t); err != nil {
			return err
		}
	}
	return fixReservedInodeTimes(dev, sb, blockSize, firstData, t)
}

// fixSuperblockTimes patches one superblock copy, if there is one at off.
func fixSuperblockTimes(dev readWriterAt, off int64, t uint32) error {
	sb := make([]byte, 1024)
	if _, err := dev.ReadAt(sb, off); err != nil {
		return err
	}
	if binary.LittleEndian.Uint16(sb[sbMagic:]) != 0xef53 {
		return nil // no backup superblock in this group (sparse_super)
	}
	for _, field := range []int{sbMtime, sbWtime, sbLastCheck, sbMkfsTime} {
		binary.LittleEndian.PutUint32(sb[field:], t)
	}
	copy(sb[sbTimesHi:sbTimesHi+4], []byte{0, 0, 0, 0})
	_, err := dev.WriteAt(sb, off)
	return err
}

// Inode fields, relative to the inode.
const (
	inodeAtime       = 0x08
	inodeCtime       = 0x0c
	inodeMtime       = 0x10
	inodeChecksumLo  = 0x7c
	inodeExtraIsize  = 0x80
	inodeChecksumHi  = 0x82
	inodeCtimeExtra  = 0x84
	inodeCrtime      = 0x90
	inodeCrtimeExtra = 0x94
)

// fixReservedInodeTimes patches the inodes up to s_first_ino (the root
// directory, lost+found, the journal and resize inodes), all in group 0.
func fixReservedInodeTimes(dev readWriterAt, sb []byte, blockSize, firstData int64, t uint32) error {
	desc := make([]byte, 64)
	if _, err := dev.ReadAt(desc, (firstData+1)*blockSize); err != nil {
		return err
	}
	table := int64(binary.LittleEndian.Uint32(desc[8:]))
	if binary.LittleEndian.Uint16(sb[sbDescSize:]) >= 64 {
		table |= int64(binary.LittleEndian.Uint32(desc[0x28:])) << 32
	}
	inodeSize := int64(binary.LittleEndian.Uint16(sb[sbInodeSize:]))
	firstIno := int64(binary.LittleEndian.Uint32(sb[sbFirstIno:]))

	inode := make([]byte, inodeSize)
	for ino := int64(1); ino <= firstIno; ino++ {
		off := table*blockSize + (ino-1)*inodeSize
		if _, err := dev.ReadAt(inode, off); err != nil {
			return err
		}
		fixInodeTimes(inode, t)
		if _, err := dev.WriteAt(inode, off); err != nil {
			return err
		}
	}
	return nil
}

func fixInodeTimes(inode []byte, t uint32) {
	set := func(field int) {
		if binary.LittleEndian.Uint32(inode[field:]) != 0 {
			binary.LittleEndian.PutUint32(inode[field:], t)
		}
	}
	set(inodeAtime)
	set(inodeCtime)
	set(inodeMtime)
	// go-diskfs fills in the inode checksum although the file system lacks
	// metadata_csum, so nothing reads it; it covers the times, so clear it.
	binary.LittleEndian.PutUint16(inode[inodeChecksumLo:], 0)
	if len(inode) <= 128 {
		return
	}
	extraEnd := 128 + int(binary.LittleEndian.Uint16(inode[inodeExtraIsize:]))
	if inodeChecksumHi+2 <= extraEnd {
		binary.LittleEndian.PutUint16(inode[inodeChecksumHi:], 0)
	}
	for field := inodeCtimeExtra; field <= inodeCrtimeExtra && field+4 <= extraEnd; field += 4 {
		if field == inodeCrtime {
			set(field)
			continue
		}
		// i_ctime_extra, i_mtime_extra, i_atime_extra, i_crtime_extra hold
		// nanoseconds and epoch bits; zero means whole seconds since 1970.
		binary.LittleEndian.PutUint32(inode[field:], 0)
	}
}
