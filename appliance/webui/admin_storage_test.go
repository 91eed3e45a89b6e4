package webui

import (
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// TestMeasureStorageMatchesDF compares measureStorage with df from GNU
// coreutils on the same folder.
func TestMeasureStorageMatchesDF(t *testing.T) {
	df := testpeer.Require(t, "df", "coreutils")
	dir := t.TempDir()
	got, err := measureStorage(dir)
	if err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(df, "--block-size=1", "--output=size,used,avail", dir).Output()
	if err != nil {
		t.Fatalf("df %s: %v", dir, err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 2 {
		t.Fatalf("df output %q: want a header and one line", out)
	}
	var want [3]uint64
	for i, field := range strings.Fields(lines[1]) {
		n, err := strconv.ParseUint(field, 10, 64)
		if err != nil || i >= 3 {
			t.Fatalf("df output %q: want three numbers", out)
		}
		want[i] = n
	}

	if got.total != want[0] {
		t.Errorf("total: got %d, want %d from df", got.total, want[0])
	}
	// Other programs write to the same file system between the two
	// measurements, so used and available may drift a little.
	const drift = 64 << 20
	if diff(got.used, want[1]) > drift {
		t.Errorf("used: got %d, want %d from df", got.used, want[1])
	}
	if diff(got.available, want[2]) > drift {
		t.Errorf("available: got %d, want %d from df", got.available, want[2])
	}
}

func diff(a, b uint64) uint64 {
	if a > b {
		return a - b
	}
	return b - a
}
