package smtp

import (
	"context"
	"log/slog"
	"net"
	"os"
	"testing"

	"github.com/heimwolke/heimwolke/appliance/mail/auth"
)

// TestCheckSpoolReadError runs the checks on a closed spool file.
// Checker.Check only logs read errors, so readErrorRecorder must keep the
// error for the 451 reply.
func TestCheckSpoolReadError(t *testing.T) {
	f, err := os.CreateTemp(t.TempDir(), spoolPrefix)
	if err != nil {
		t.Fatal(err)
	}
	const msg = "From: a@sender.test\r\nSubject: x\r\n\r\nbody\r\n"
	if _, err := f.WriteString(msg); err != nil {
		t.Fatal(err)
	}
	m := &spooledMessage{file: f, size: int64(len(msg))}
	if err := m.readHeader(1024, slog.Default()); err != nil {
		t.Fatal(err)
	}
	f.Close() // every later read of the body fails

	d := newTestDNS(t, "127.0.0.1:0")
	c := &auth.Checker{AuthServID: testHost, Resolver: d.resolver()}
	body := &readErrorRecorder{r: m.body()}
	c.Check(context.Background(), auth.Envelope{IP: net.IPv4(127, 0, 0, 1), Helo: "client.test", MailFrom: "a@sender.test"},
		m.header, body)
	if body.err == nil {
		t.Error("readErrorRecorder kept no error after reading a closed spool file, want the read error")
	}
}
