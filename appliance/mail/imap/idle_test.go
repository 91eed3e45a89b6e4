package imap

import (
	"context"
	"crypto/tls"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// TestIdleSeesDelivery guards against new mail reaching an idling client
// late or not at all: a message delivered through the store must raise
// EXISTS within a second.
func TestIdleSeesDelivery(t *testing.T) {
	env := newTestEnv(t, Options{})
	exists := make(chan uint32, 16)
	c, err := imapclient.DialTLS(env.addr, &imapclient.Options{
		TLSConfig: &tls.Config{RootCAs: env.caPool, ServerName: "localhost"},
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(data *imapclient.UnilateralDataMailbox) {
				if data.NumMessages != nil {
					exists <- *data.NumMessages
				}
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(env.user, env.password).Wait(); err != nil {
		t.Fatalf("login: %v", err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("select: %v", err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}

	for i := range 3 {
		start := time.Now()
		err := env.store.Deliver(context.Background(), env.user, "", strings.NewReader(testMessage("idle", "Hallo")))
		if err != nil {
			t.Fatal(err)
		}
		select {
		case n := <-exists:
			if n != uint32(i+1) {
				t.Errorf("EXISTS = %d, want %d", n, i+1)
			}
			t.Logf("EXISTS after %v", time.Since(start))
		case <-time.After(time.Second):
			t.Fatalf("no EXISTS within 1 s after delivery %d", i+1)
		}
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatalf("IDLE: %v", err)
	}

	// The delivered messages are readable.
	msgs, err := c.Fetch(imap.SeqSetNum(1, 2, 3), &imap.FetchOptions{Envelope: true, UID: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 3 {
		t.Fatalf("got %d messages, want 3", len(msgs))
	}
	if got := msgs[0].Envelope.Subject; got != "idle" {
		t.Errorf("subject = %q, want %q", got, "idle")
	}
}
