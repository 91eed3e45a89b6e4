package aliases

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/packages/testpeer"
)

const (
	benchAliases = 1000
	benchLookups = 10000
)

// BenchmarkAliasLookup compares the time per alias lookup of Directory,
// which queries SQLite on every call, with Postfix's postmap reading the
// same addresses from a virtual alias map of type hash (Berkeley DB) in
// one process. Half of the addresses are aliases and half are unknown. The
// postmap time includes its process start. Directory.Lookup also looks up
// the user first, as the SMTP server's RCPT handling needs.
func BenchmarkAliasLookup(b *testing.B) {
	postmap := testpeer.Require(b, "postmap", "postfix")
	ctx := context.Background()
	d := newTestDirectory(b)
	dir := b.TempDir()

	var table, queries strings.Builder
	for i := range benchAliases {
		address := fmt.Sprintf("alias%d@%s", i, testDomain)
		if err := d.Add(ctx, address, "ben"); err != nil {
			b.Fatal(err)
		}
		fmt.Fprintf(&table, "%s ben\n", address)
	}
	keys := make([]string, benchLookups)
	for i := range keys {
		keys[i] = fmt.Sprintf("alias%d@%s", i%benchAliases, testDomain)
		if i%2 == 1 {
			keys[i] = fmt.Sprintf("unknown%d@%s", i, testDomain)
		}
		fmt.Fprintln(&queries, keys[i])
	}
	mapFile := filepath.Join(dir, "virtual")
	if err := os.WriteFile(mapFile, []byte(table.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	if out, err := exec.Command(postmap, "hash:"+mapFile).CombinedOutput(); err != nil {
		b.Fatalf("postmap hash:%s: %v\n%s", mapFile, err, out)
	}

	b.ResetTimer()
	var ours, postfix time.Duration
	for range b.N {
		start := time.Now()
		for _, k := range keys {
			d.Lookup(ctx, k)
		}
		ours += time.Since(start)

		start = time.Now()
		cmd := exec.Command(postmap, "-q", "-", "hash:"+mapFile)
		cmd.Stdin = strings.NewReader(queries.String())
		out, err := cmd.Output()
		postfix += time.Since(start)
		if err != nil {
			b.Fatalf("postmap -q: %v", err)
		}
		if got := strings.Count(string(out), "\n"); got != benchLookups/2 {
			b.Fatalf("postmap found %d addresses, want %d", got, benchLookups/2)
		}
	}
	n := float64(b.N * benchLookups)
	b.ReportMetric(float64(ours.Nanoseconds())/n, "heimwolke-ns/lookup")
	b.ReportMetric(float64(postfix.Nanoseconds())/n, "postfix-ns/lookup")
	b.ReportMetric(float64(ours)/float64(postfix), "ratio")
}
