package smtp

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// benchMessages and benchSessions size the load: smtp-source sends
// benchMessages messages of benchBytes over benchSessions parallel sessions.
const (
	benchMessages = 2000
	benchSessions = 10
	benchBytes    = 2048
)

// fileDeliverer writes each message to its own file with fsync of file and
// folder, as a maildir delivery does, so that the box's number includes the
// durable write that Postfix also makes before its 250.
type fileDeliverer struct {
	dir string
	n   atomic.Int64
}

func (d *fileDeliverer) Deliver(ctx context.Context, login, folder string, r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	name := filepath.Join(d.dir, strconv.FormatInt(d.n.Add(1), 10))
	f, err := os.Create(name)
	if err != nil {
		return err
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	dir, err := os.Open(d.dir)
	if err != nil {
		return err
	}
	defer dir.Close()
	return dir.Sync()
}

// runSMTPSource loads addr with Postfix's smtp-source and returns the
// messages per second.
func runSMTPSource(b *testing.B, addr, to string) float64 {
	path := testpeer.Require(b, "smtp-source", "postfix")
	start := time.Now()
	cmd := exec.Command(path, "-s", strconv.Itoa(benchSessions), "-m", strconv.Itoa(benchMessages),
		"-l", strconv.Itoa(benchBytes), "-M", "load.sender.test", "-f", "load@sender.test", "-t", to, addr)
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("smtp-source to %s: %v\n%s", addr, err, out)
	}
	return float64(benchMessages) / time.Since(start).Seconds()
}

// BenchmarkInboundSMTP accepts mail from smtp-source, first on the box's
// inbound port, with SPF, DKIM and DMARC checks against the test DNS
// server and a file write per message, then on Postfix from Debian, which
// queues and delivers to a maildir. Both run in the same process on the
// same machine, one after the other.
func BenchmarkInboundSMTP(b *testing.B) {
	for range b.N {
		ours, postfix := benchInbound(b)
		b.ReportMetric(ours, "heimwolke-msg/s")
		b.ReportMetric(postfix, "postfix-msg/s")
		b.ReportMetric(ours/postfix, "ratio")
	}
}

func benchInbound(b *testing.B) (ours, postfixRate float64) {
	e := newTestEnv(b, envOptions{server: func(o *Options) {
		o.MessagesPerHour = 1 << 30
		o.MaxConnectionsPerAddress = 100
		o.Deliverer = &fileDeliverer{dir: b.TempDir()}
	}})
	e.dns.addTXT(b, "sender.test", "v=spf1 ip4:127.0.0.1 -all")
	ours = runSMTPSource(b, e.inbound, "anna@example.test")

	p := startPostfix(b, postfixOptions{})
	postfixRate = runSMTPSource(b, p.addr(), "friend@remote.test")
	waitFor(b, 2*time.Minute, "postfix to deliver the load", func() bool {
		files, _ := filepath.Glob(filepath.Join(p.mailDir, "remote.test", "friend", "new", "*"))
		return len(files) >= benchMessages
	})
	fmt.Fprintf(os.Stderr, "inbound SMTP, %d messages of %d bytes over %d sessions: heimwolke %.0f msg/s, postfix %.0f msg/s\n",
		benchMessages, benchBytes, benchSessions, ours, postfixRate)
	return ours, postfixRate
}
