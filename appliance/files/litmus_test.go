package files

import (
	"context"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// litmusSummary matches litmus's line after each suite, such as
// "<- summary for `locks': of 41 tests run: 41 passed, 0 failed. 100.0%".
var litmusSummary = regexp.MustCompile("summary for `([a-z]+)': of (\\d+) tests run: (\\d+) passed, (\\d+) failed")

func TestLitmusAllSuites(t *testing.T) {
	litmus := testpeer.Require(t, "litmus", "litmus")
	env := newTestEnv(t, Options{})

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, litmus, env.homeURL("max"), "max", env.secrets["max"])
	cmd.Env = append(cmd.Environ(), "TESTS=basic copymove props locks http")
	cmd.Dir = t.TempDir() // litmus writes debug.log and child.log there
	out, err := cmd.CombinedOutput()
	t.Logf("litmus output:\n%s", out)

	summaries := litmusSummary.FindAllStringSubmatch(string(out), -1)
	if len(summaries) != 5 {
		t.Fatalf("got %d suite summaries, want 5 (basic, copymove, props, locks, http); litmus: %v", len(summaries), err)
	}
	passed := 0
	for _, s := range summaries {
		failed, _ := strconv.Atoi(s[4])
		if failed != 0 {
			t.Errorf("suite %s: got %s failed, want 0", s[1], s[4])
		}
		n, _ := strconv.Atoi(s[3])
		passed += n
	}
	t.Logf("litmus: %d tests passed in 5 suites", passed)
	if err != nil {
		t.Errorf("litmus exited with %v", err)
	}
}
