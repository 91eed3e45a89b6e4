package build

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestKernelArch(t *testing.T) {
	x86 := make([]byte, 0x300)
	copy(x86[0x202:], "HdrS")
	arm := make([]byte, 0x100)
	copy(arm[0x38:], "ARM\x64")
	tests := []struct {
		name    string
		kernel  []byte
		want    string
		wantErr bool
	}{
		{"bzImage", x86, "amd64", false},
		{"arm64 Image", arm, "arm64", false},
		{"garbage", []byte("not a kernel"), "", true},
		{"empty", nil, "", true},
	}
	for _, tt := range tests {
		got, err := kernelArch(tt.kernel)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("kernelArch(%s) = %q, %v; want %q, error %v", tt.name, got, err, tt.want, tt.wantErr)
		}
	}
}

func TestExtractBootRejectsBadImages(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty.img")
	if err := os.WriteFile(empty, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	truncated := filepath.Join(dir, "truncated.img")
	table, err := newLayout("amd64").Table.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(truncated, table, 0o644); err != nil {
		t.Fatal(err)
	}
	tests := []struct{ path, want string }{
		{filepath.Join(dir, "missing.img"), "not found"},
		{empty, "no MBR partition table"},
		{truncated, "the image is truncated"},
	}
	for _, tt := range tests {
		_, err := ExtractBoot(tt.path, dir)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ExtractBoot(%s) = %v, want an error containing %q", filepath.Base(tt.path), err, tt.want)
		}
	}
}
