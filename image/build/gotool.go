package build

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// programs are the Go packages compiled into every image, with the path each
// binary gets in the root file system.
var programs = []struct{ pkg, path string }{
	{"github.com/heimwolke/heimwolke/appliance/cmd/heimwolke-init", "gokrazy/init"},
	{"github.com/gokrazy/gokrazy/cmd/dhcp", "gokrazy/dhcp"},
	{"github.com/gokrazy/gokrazy/cmd/ntp", "gokrazy/ntp"},
	{"github.com/heimwolke/heimwolke/appliance/cmd/heimwolke", "usr/bin/heimwolke"},
	{"github.com/heimwolke/heimwolke/agent/cmd/heimwolke-agent", "usr/bin/heimwolke-agent"},
}

// compilePrograms cross-compiles every program for goarch into dir and returns
// the binary path for each root file system path. The flags make the output
// depend only on the sources: -trimpath drops local paths, an empty build id
// and no VCS stamping drop what varies between checkouts.
func compilePrograms(ctx context.Context, srcDir, dir, goarch, version string) (map[string]string, error) {
	args := []string{
		"build", "-trimpath", "-buildvcs=false",
		"-ldflags", "-s -w -buildid= -X github.com/heimwolke/heimwolke/packages/version.Version=" + version,
		"-o", dir + string(filepath.Separator),
	}
	for _, p := range programs {
		args = append(args, p.pkg)
	}
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = srcDir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch, "GOFLAGS=-mod=readonly")
	if out, err := cmd.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("compiling programs for linux/%s: %w\n%s", goarch, err, out)
	}
	binaries := map[string]string{}
	for _, p := range programs {
		binaries[p.path] = filepath.Join(dir, filepath.Base(p.pkg))
	}
	return binaries, nil
}

// moduleDir returns the folder of module mod in the module cache, downloading
// it when it is missing. The version is the one srcDir's go.mod requires.
func moduleDir(ctx context.Context, srcDir, mod string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", "mod", "download", "-json", mod)
	cmd.Dir = srcDir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("finding module %s (is it required in go.mod?): %w\n%s%s", mod, err, out, stderr.Bytes())
	}
	var info struct{ Dir, Error string }
	if err := json.Unmarshal(out, &info); err != nil {
		return "", fmt.Errorf("reading go mod download output for %s: %w", mod, err)
	}
	if info.Error != "" || info.Dir == "" {
		return "", fmt.Errorf("module %s not available: %s", mod, info.Error)
	}
	return info.Dir, nil
}

// checkSourceDir reports whether dir is the root of the Heimwolke source
// tree.
func checkSourceDir(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil || !bytes.Contains(b, []byte("module github.com/heimwolke/heimwolke\n")) {
		return fmt.Errorf("%s is not the Heimwolke source tree (no go.mod of github.com/heimwolke/heimwolke there): pass the repository's top folder", dir)
	}
	return nil
}

// FindSourceDir returns the root of the Heimwolke module containing dir.
func FindSourceDir(dir string) (string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	for d := abs; ; d = filepath.Dir(d) {
		b, err := os.ReadFile(filepath.Join(d, "go.mod"))
		if err == nil && bytes.Contains(b, []byte("module github.com/heimwolke/heimwolke\n")) {
			return d, nil
		}
		if filepath.Dir(d) == d {
			return "", fmt.Errorf("no Heimwolke source tree (go.mod of github.com/heimwolke/heimwolke) at or above %s: run the builder inside the repository or pass --src", abs)
		}
	}
}

// SourceVersion describes the source tree with git describe ("v0.1.0-3-gabc1234",
// "-dirty" when it has uncommitted changes), or "dev" outside a git checkout.
func SourceVersion(ctx context.Context, srcDir string) string {
	out, err := gitOutput(ctx, srcDir, "describe", "--tags", "--always", "--dirty")
	if err != nil || out == "" {
		return "dev"
	}
	return out
}

// SourceTime is the commit time of HEAD, so that a rebuild of the same commit
// stamps the same times. Without git, SOURCE_DATE_EPOCH is used, then a fixed
// date.
func SourceTime(ctx context.Context, srcDir string) time.Time {
	if out, err := gitOutput(ctx, srcDir, "log", "-1", "--format=%ct"); err == nil {
		if sec, err := strconv.ParseInt(out, 10, 64); err == nil {
			return time.Unix(sec, 0).UTC()
		}
	}
	if sec, err := strconv.ParseInt(os.Getenv("SOURCE_DATE_EPOCH"), 10, 64); err == nil {
		return time.Unix(sec, 0).UTC()
	}
	return time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
}

func gitOutput(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "git", args...)
	cmd.Dir = dir
	out, err := cmd.Output()
	return strings.TrimSpace(string(out)), err
}
