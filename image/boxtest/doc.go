// Package boxtest holds the whole-box tests: they build real images with
// image/build, read them back with independent tools from Debian and boot them
// under QEMU. The package has no code of its own outside its tests.
package boxtest
