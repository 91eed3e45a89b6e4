package smtp

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	netsmtp "net/smtp"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/appliance/mail/store"
)

// heapPeak samples the Go heap every 10 ms until stop and keeps the largest
// HeapAlloc and HeapSys it saw.
type heapPeak struct {
	stopped chan struct{}
	done    chan struct{}
	alloc   uint64
	sys     uint64
}

func startHeapPeak() *heapPeak {
	p := &heapPeak{stopped: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(p.done)
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			p.alloc = max(p.alloc, ms.HeapAlloc)
			p.sys = max(p.sys, ms.HeapSys)
			select {
			case <-p.stopped:
				return
			case <-tick.C:
			}
		}
	}()
	return p
}

func (p *heapPeak) stop() (alloc, sys uint64) {
	close(p.stopped)
	<-p.done
	return p.alloc, p.sys
}

// writeBigMessage writes a message of size bytes to w from a small buffer,
// so that the client holds no copy of it.
func writeBigMessage(w io.Writer, from string, size int) error {
	header := "From: " + from + "\r\nTo: anna@example.test\r\nSubject: big\r\n\r\n"
	if _, err := io.WriteString(w, header); err != nil {
		return err
	}
	line := strings.Repeat("0123456789", 7) + "abcd\r\n"
	chunk := []byte(strings.Repeat(line, 64<<10/len(line)))
	for left := size - len(header); left > 0; {
		n := min(left, len(chunk))
		if _, err := w.Write(chunk[:n]); err != nil {
			return err
		}
		left -= n
	}
	return nil
}

// sendBig sends one message of size bytes to addr with net/smtp.
func sendBig(addr, to string, size int) error {
	c, err := netsmtp.Dial(addr)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("client.sender.test"); err != nil {
		return err
	}
	return sendBigData(c, "big@sender.test", "big@sender.test", to, size)
}

// sendBigData runs MAIL, RCPT and DATA for one message of size bytes.
func sendBigData(c *netsmtp.Client, mailFrom, headerFrom, to string, size int) error {
	if err := c.Mail(mailFrom); err != nil {
		return err
	}
	if err := c.Rcpt(to); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if err := writeBigMessage(w, headerFrom, size); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

// submitBig submits one message of size bytes from anna to a remote
// address over port 587 with STARTTLS and AUTH PLAIN.
func submitBig(e *testEnv, size int) error {
	c, err := netsmtp.Dial(e.submission)
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.Hello("client.example.test"); err != nil {
		return err
	}
	if err := c.StartTLS(&tls.Config{RootCAs: e.cert.Pool, ServerName: "localhost"}); err != nil {
		return err
	}
	if err := c.Auth(netsmtp.PlainAuth("", "anna", e.secret, "127.0.0.1")); err != nil {
		return err
	}
	return sendBigData(c, "anna@example.test", "anna@example.test", "friend@remote.test", size)
}

// parallelPeak runs send messages times at once and returns the growth of
// the peak HeapAlloc and HeapSys over the idle heap before, and how many
// sends failed.
func parallelPeak(t testing.TB, messages int, send func() error) (allocGrowth, sysGrowth uint64, failed int) {
	runtime.GC()
	var before runtime.MemStats
	runtime.ReadMemStats(&before)
	peak := startHeapPeak()

	var wg sync.WaitGroup
	errs := make(chan error, messages)
	for range messages {
		wg.Go(func() {
			if err := send(); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	alloc, sys := peak.stop()
	close(errs)
	for err := range errs {
		t.Errorf("sending a message: %v", err)
		failed++
	}
	return alloc - min(alloc, before.HeapAlloc), sys - min(sys, before.HeapSys), failed
}

// inboundMemory sends messages messages of size bytes at once to the
// inbound port, which delivers into a real mail store, and returns the
// growth of the peak HeapAlloc and HeapSys over the idle heap before.
func inboundMemory(t testing.TB, messages, size int) (allocGrowth, sysGrowth uint64) {
	st, err := store.Open(context.Background(), store.Options{
		Dir:          filepath.Join(t.TempDir(), "messages"),
		DatabasePath: filepath.Join(t.TempDir(), "mail.db"),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := newTestEnv(t, envOptions{server: func(o *Options) {
		o.Deliverer = st
		o.MaxConnectionsPerAddress = messages
	}})
	e.dns.addTXT(t, "sender.test", "v=spf1 ip4:127.0.0.1 -all")

	alloc, sys, failed := parallelPeak(t, messages, func() error {
		return sendBig(e.inbound, "anna@example.test", size)
	})

	inbox, err := st.Mailbox(context.Background(), "anna", "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	status, err := st.MailboxStatus(context.Background(), inbox.ID)
	if err != nil {
		t.Fatal(err)
	}
	if want := messages - failed; int(status.Messages) != want {
		t.Errorf("inbox has %d messages, want %d", status.Messages, want)
	}
	return alloc, sys
}

// BenchmarkInboundMemory sends 20 messages of 10 MiB at once to the inbound
// port, with SPF, DKIM and DMARC checks and delivery into the mail store,
// and reports how far the Go heap grew over its idle size.
func BenchmarkInboundMemory(b *testing.B) {
	const messages, size = 20, 10 << 20
	for range b.N {
		alloc, sys := inboundMemory(b, messages, size)
		b.ReportMetric(float64(alloc)/(1<<20), "peak-heap-alloc-MiB")
		b.ReportMetric(float64(sys)/(1<<20), "peak-heap-sys-MiB")
		fmt.Fprintf(os.Stderr, "inbound SMTP, %d messages of %d MiB at once: heap grew by %.1f MiB allocated, %.1f MiB from the OS\n",
			messages, size>>20, float64(alloc)/(1<<20), float64(sys)/(1<<20))
	}
}

// TestInboundHeapBounded guards the spooling of DATA: four messages of 16
// MiB at once must grow the heap by less than one message.
func TestInboundHeapBounded(t *testing.T) {
	const messages, size = 4, 16 << 20
	alloc, _ := inboundMemory(t, messages, size)
	if alloc >= size {
		t.Errorf("heap grew by %d MiB under %d messages of %d MiB, want less than one message", alloc>>20, messages, size>>20)
	}
	t.Logf("heap grew by %.1f MiB under %d messages of %d MiB", float64(alloc)/(1<<20), messages, size>>20)
}

// BenchmarkSubmissionMemory submits 20 messages of 10 MiB at once for a
// remote recipient, which the queue signs with DKIM and stores, and
// reports how far the Go heap grew over its idle size.
func BenchmarkSubmissionMemory(b *testing.B) {
	const messages, size = 20, 10 << 20
	for range b.N {
		e := newTestEnv(b, envOptions{server: func(o *Options) { o.MaxConnectionsPerAddress = messages }})
		alloc, sys, _ := parallelPeak(b, messages, func() error { return submitBig(e, size) })
		b.ReportMetric(float64(alloc)/(1<<20), "peak-heap-alloc-MiB")
		b.ReportMetric(float64(sys)/(1<<20), "peak-heap-sys-MiB")
		fmt.Fprintf(os.Stderr, "submission SMTP, %d messages of %d MiB at once: heap grew by %.1f MiB allocated, %.1f MiB from the OS\n",
			messages, size>>20, float64(alloc)/(1<<20), float64(sys)/(1<<20))
	}
}
