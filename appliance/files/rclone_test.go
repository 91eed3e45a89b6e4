package files

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// writeTree creates n files of mixed sizes in folders below dir, with
// names that carry spaces, umlauts, '%', '#' and '?'. It returns the
// files' SHA-256 sums by slash-separated path.
func writeTree(t *testing.T, dir string, n int) map[string]string {
	t.Helper()
	rng := rand.New(rand.NewPCG(1, 2))
	folders := []string{".", "Fotos 2024", "Fotos 2024/Sommer", "Übung", "Rechnungen #1", "a%20b", "was?"}
	sums := make(map[string]string, n)
	for i := range n {
		size := rng.IntN(4 << 10)
		switch {
		case i%500 == 0:
			size = 3<<20 + rng.IntN(1<<20)
		case i%50 == 0:
			size = 100<<10 + rng.IntN(200<<10)
		case i%97 == 0:
			size = 0
		}
		data := make([]byte, size)
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		name := filepath.Join(folders[i%len(folders)], fmt.Sprintf("Datei %04d ä%%#.bin", i))
		if err := os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
		sum := sha256.Sum256(data)
		sums[filepath.ToSlash(name)] = hex.EncodeToString(sum[:])
	}
	return sums
}

// treeSums returns the SHA-256 sums of the files below dir.
func treeSums(t *testing.T, dir string) map[string]string {
	t.Helper()
	sums := make(map[string]string)
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		sum := sha256.Sum256(data)
		sums[filepath.ToSlash(rel)] = hex.EncodeToString(sum[:])
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return sums
}

func compareSums(t *testing.T, what string, got, want map[string]string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("%s: got %d files, want %d", what, len(got), len(want))
	}
	bad := 0
	for name, sum := range want {
		if got[name] != sum && bad < 5 {
			bad++
			t.Errorf("%s: %q has SHA-256 %q, want %q", what, name, got[name], sum)
		}
	}
}

func TestRcloneSyncRoundTrip(t *testing.T) {
	rclone := testpeer.Require(t, "rclone", "rclone")
	env := newTestEnv(t, Options{})
	work := t.TempDir()

	obscured, err := exec.Command(rclone, "obscure", env.secrets["max"]).Output()
	if err != nil {
		t.Fatalf("rclone obscure: %v", err)
	}
	config := filepath.Join(work, "rclone.conf")
	conf := fmt.Sprintf("[heim]\ntype = webdav\nurl = %s\nvendor = other\nuser = max\npass = %s\n",
		env.homeURL("max"), strings.TrimSpace(string(obscured)))
	if err := os.WriteFile(config, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		args = append([]string{"--config", config, "--transfers", "8", "--checkers", "8", "--retries", "1"}, args...)
		out, err := exec.CommandContext(ctx, rclone, args...).CombinedOutput()
		if err != nil {
			t.Fatalf("rclone %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}

	up := filepath.Join(work, "up")
	want := writeTree(t, up, 2000)
	start := time.Now()
	run("sync", up, "heim:")
	t.Logf("rclone uploaded %d files in %v", len(want), time.Since(start))
	compareSums(t, "home folder on disk", treeSums(t, filepath.Join(env.dataDir, "home", "max")), want)

	run("check", up, "heim:")

	down := filepath.Join(work, "down")
	run("sync", "heim:", down)
	compareSums(t, "downloaded tree", treeSums(t, down), want)
}
