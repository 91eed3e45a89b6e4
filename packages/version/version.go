// Package version carries the version string that the image builder stamps into
// every Heimwolke program at link time.
package version

// Version is the source version the program was built from. The image builder
// sets it with -ldflags "-X github.com/heimwolke/heimwolke/packages/version.Version=...";
// a plain "go build" leaves it at "dev".
var Version = "dev"
