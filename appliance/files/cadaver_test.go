package files

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// TestCadaverSession drives cadaver through a session that uses every
// method, and checks its transcript and the files on disk.
func TestCadaverSession(t *testing.T) {
	cadaver := testpeer.Require(t, "cadaver", "cadaver")
	env := newTestEnv(t, Options{})
	work := t.TempDir()

	// cadaver reads the credentials from ~/.netrc.
	netrc := "machine 127.0.0.1 login max password " + env.secrets["max"] + "\n"
	if err := os.WriteFile(filepath.Join(work, ".netrc"), []byte(netrc), 0o600); err != nil {
		t.Fatal(err)
	}
	local := filepath.Join(work, "brief.txt")
	if err := os.WriteFile(local, []byte("Liebe Grüße\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	script := strings.Join([]string{
		"mkcol Briefe",
		"cd Briefe",
		"put " + local + " brief.txt",
		"copy brief.txt kopie.txt",
		"move kopie.txt verschoben.txt",
		"propset brief.txt farbe blau",
		"propget brief.txt farbe",
		"lock brief.txt",
		"discover brief.txt",
		"unlock brief.txt",
		"ls",
		"get verschoben.txt " + filepath.Join(work, "zurueck.txt"),
		"delete brief.txt",
		"ls",
		"quit",
	}, "\n") + "\n"

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cadaver, env.homeURL("max"))
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "HOME="+work)
	cmd.Stdin = strings.NewReader(script)
	out, err := cmd.CombinedOutput()
	transcript := string(out)
	t.Logf("cadaver transcript:\n%s", transcript)
	if err != nil {
		t.Fatalf("cadaver: %v", err)
	}

	for _, want := range []string{
		"Creating `Briefe': succeeded.",
		"Uploading " + local + " to `/dav/files/max/Briefe/brief.txt':",
		"Copying `/dav/files/max/Briefe/brief.txt' to `/dav/files/max/Briefe/kopie.txt':  succeeded.",
		"Moving `/dav/files/max/Briefe/kopie.txt' to `/dav/files/max/Briefe/verschoben.txt':  succeeded.",
		"Setting property on `brief.txt': succeeded.",
		"Value of farbe is: blau",
		"Locking `brief.txt': succeeded.",
		"Scope: exclusive  Type: write",
		"Unlocking `brief.txt': succeeded.",
		"Deleting `brief.txt': succeeded.",
	} {
		if !strings.Contains(transcript, want) {
			t.Errorf("transcript lacks %q", want)
		}
	}
	if strings.Contains(transcript, "failed") {
		t.Errorf("transcript reports a failure")
	}

	got, err := os.ReadFile(filepath.Join(work, "zurueck.txt"))
	if err != nil || string(got) != "Liebe Grüße\n" {
		t.Errorf("downloaded file: got %q (%v), want %q", got, err, "Liebe Grüße\n")
	}
	home := filepath.Join(env.dataDir, "home", "max", "Briefe")
	if _, err := os.Stat(filepath.Join(home, "brief.txt")); !os.IsNotExist(err) {
		t.Errorf("brief.txt on disk after delete: got %v, want not exist", err)
	}
	if _, err := os.Stat(filepath.Join(home, "verschoben.txt")); err != nil {
		t.Errorf("verschoben.txt on disk: %v", err)
	}
}
