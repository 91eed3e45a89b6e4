package queue

import (
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
)

// discardSession accepts every message and throws its content away.
type discardSession struct{ received *atomic.Int64 }

func (s discardSession) Reset()                                 {}
func (s discardSession) Logout() error                          { return nil }
func (s discardSession) Mail(string, *gosmtp.MailOptions) error { return nil }
func (s discardSession) Rcpt(string, *gosmtp.RcptOptions) error { return nil }
func (s discardSession) Data(r io.Reader) error {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return err
	}
	s.received.Add(1)
	return nil
}

// startDiscardServer runs an SMTP server on loopback that discards every
// message, and returns its address and the count of received messages.
func startDiscardServer(t testing.TB) (string, *atomic.Int64) {
	received := &atomic.Int64{}
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(*gosmtp.Conn) (gosmtp.Session, error) {
		return discardSession{received}, nil
	}))
	srv.Domain = "mx.remote.test"
	srv.MaxMessageBytes = 64 << 20
	srv.AllowInsecureAuth = true
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	return l.Addr().String(), received
}

// writeMessageBody writes the body of a message of at least size bytes to a
// new file from a small buffer, so that the test holds no copy of it.
func writeMessageBody(t testing.TB, size int) *os.File {
	f, err := os.Create(filepath.Join(t.TempDir(), "body"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	line := strings.Repeat("0123456789", 7) + "abcd\r\n"
	chunk := []byte("\r\n" + strings.Repeat(line, 64<<10/len(line)))
	for written := 0; written < size; written += len(chunk) {
		if _, err := f.Write(chunk); err != nil {
			t.Fatal(err)
		}
	}
	return f
}

// BenchmarkDeliveryMemory queues 20 messages of 10 MiB, delivers them at
// once with 20 workers to an SMTP server on loopback that discards them,
// and reports how far the Go heap grew over its idle size.
func BenchmarkDeliveryMemory(b *testing.B) {
	const messages, size = 20, 10 << 20
	for range b.N {
		addr, received := startDiscardServer(b)
		q := openTestQueue(b, b.TempDir(), func(o *Options) {
			o.Workers = messages
			o.Resolver = notFoundResolver{}
			o.Dial = func(ctx context.Context, network, _ string) (net.Conn, error) {
				return (&net.Dialer{}).DialContext(ctx, network, addr)
			}
		})
		body := writeMessageBody(b, size)
		header := []byte("From: a@example.org\r\nTo: x@remote.test\r\nSubject: big\r\n")
		for range messages {
			_, err := q.Enqueue(context.Background(), Envelope{Login: "a", From: "a@example.org", To: []string{"x@remote.test"}}, header, body)
			if err != nil {
				b.Fatal(err)
			}
		}

		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		var peakAlloc, peakSys uint64
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			q.Run(ctx)
		}()
		for received.Load() < messages {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			peakAlloc, peakSys = max(peakAlloc, ms.HeapAlloc), max(peakSys, ms.HeapSys)
			time.Sleep(10 * time.Millisecond)
		}
		cancel()
		<-done

		alloc := float64(peakAlloc-min(peakAlloc, before.HeapAlloc)) / (1 << 20)
		sys := float64(peakSys-min(peakSys, before.HeapSys)) / (1 << 20)
		b.ReportMetric(alloc, "peak-heap-alloc-MiB")
		b.ReportMetric(sys, "peak-heap-sys-MiB")
		fmt.Fprintf(os.Stderr, "queue delivery, %d messages of %d MiB at once: heap grew by %.1f MiB allocated, %.1f MiB from the OS\n",
			messages, size>>20, alloc, sys)
	}
}
