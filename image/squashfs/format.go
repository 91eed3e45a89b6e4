package squashfs

// On-disk constants of the SquashFS 4.0 format, as the Linux kernel reads it
// (fs/squashfs/squashfs_fs.h) and squashfs-tools writes it. All integers on
// disk are little-endian.
const (
	superblockMagic = 0x73717368 // "hsqs"
	superblockSize  = 96
	versionMajor    = 4
	versionMinor    = 0

	// compressionZlib is the compressor id that the format calls "gzip". The
	// blocks are zlib streams (RFC 1950), not gzip files.
	compressionZlib = 1

	// Superblock flags. Only the ones this writer sets are listed.
	flagNoFragments = 0x0010
	flagNoXattrs    = 0x0200

	// noFragment, noXattr and noTable mark an absent fragment, xattr id or
	// table in inodes and in the superblock.
	noFragment = 0xffffffff
	noXattr    = 0xffffffff
	noTable    = 0xffffffffffffffff

	// A metadata block contains up to metadataBlockSize uncompressed bytes
	// and starts with a 16-bit length. The metadataUncompressed bit in that
	// length marks a block stored as is.
	metadataBlockSize    = 8192
	metadataUncompressed = 0x8000

	// dataUncompressed marks a data block stored as is in a file inode's
	// block list. The low 24 bits contain the size on disk.
	dataUncompressed = 1 << 24

	// Inode types. A directory entry stores the basic type even when the
	// inode it points to is an extended one.
	inodeTypeDir      = 1
	inodeTypeFile     = 2
	inodeTypeSymlink  = 3
	inodeTypeExtDir   = 8
	inodeTypeExtFile  = 9
	inodeHeaderSize   = 16
	dirHeaderSize     = 12
	dirEntryFixedSize = 8

	// maxDirHeaderEntries is the maximum number of entries after one
	// directory header. The kernel rejects a directory with more.
	maxDirHeaderEntries = 256

	// dirSizeOffset is added to a directory's listing size in its inode,
	// because readers count the "." and ".." entries they invent as 3 bytes.
	dirSizeOffset = 3

	// maxNameLen is the longest name in bytes. The format allows 256, but
	// Linux (NAME_MAX) and unsquashfs stop at 255.
	maxNameLen = 255

	// maxSymlinkLen is the longest symlink target in bytes: Linux's PATH_MAX
	// of 4096 minus the terminating NUL.
	maxSymlinkLen = 4095

	// imageAlignment is the size the finished image is padded to, so that
	// it fills whole 4 KiB device blocks as mksquashfs images do.
	imageAlignment = 4096
)

// Block sizes that the format allows. The kernel also rejects a block size
// below its page size, which is 64 KiB on some arm64 kernels.
const (
	DefaultBlockSize = 128 << 10
	MinBlockSize     = 4 << 10
	MaxBlockSize     = 1 << 20
)
