package smtp

import "testing"

// TestSubmissionHeapBounded guards the streaming DKIM signing and enqueueing
// of submitted mail: four messages of 16 MiB at once for a remote recipient
// must grow the heap by less than one message.
func TestSubmissionHeapBounded(t *testing.T) {
	const messages, size = 4, 16 << 20
	e := newTestEnv(t, envOptions{server: func(o *Options) { o.MaxConnectionsPerAddress = messages }})
	alloc, _, failed := parallelPeak(t, messages, func() error { return submitBig(e, size) })
	if alloc >= size {
		t.Errorf("heap grew by %d MiB under %d messages of %d MiB, want less than one message", alloc>>20, messages, size>>20)
	}
	t.Logf("heap grew by %.1f MiB under %d messages of %d MiB", float64(alloc)/(1<<20), messages, size>>20)

	entries, err := e.queue.Entries(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if want := messages - failed; len(entries) != want {
		t.Errorf("queue has %d entries, want %d", len(entries), want)
	}
}
