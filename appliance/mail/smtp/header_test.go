package smtp

import (
	"bytes"
	"strings"
	"testing"
)

func TestRemoveAuthResults(t *testing.T) {
	msg := "Received: x\r\nAuthentication-Results: mail.example.test; dmarc=pass\r\n" +
		"authentication-results:  MAIL.EXAMPLE.TEST;\r\n spf=pass\r\n" +
		"Authentication-Results: other.test; spf=fail\r\nSubject: s\r\n\r\nAuthentication-Results: mail.example.test; body\r\n"
	got := string(removeAuthResults([]byte(msg), "mail.example.test"))
	want := "Received: x\r\nAuthentication-Results: other.test; spf=fail\r\nSubject: s\r\n\r\nAuthentication-Results: mail.example.test; body\r\n"
	if got != want {
		t.Errorf("removeAuthResults:\ngot  %q\nwant %q", got, want)
	}
}

func TestFieldValues(t *testing.T) {
	fields, rest := headerFields([]byte("From: Anna\r\n <anna@example.test>\r\nTo: b\r\n\r\nbody"))
	if got := fieldValues(fields, "from"); len(got) != 1 || got[0] != "Anna <anna@example.test>" {
		t.Errorf("fieldValues(from) = %q, want [\"Anna <anna@example.test>\"]", got)
	}
	if string(rest) != "\r\nbody" {
		t.Errorf("rest = %q, want %q", rest, "\r\nbody")
	}
}

// FuzzHeaderFields checks that splitting and rejoining a header loses and
// adds no byte, whatever the client sends.
func FuzzHeaderFields(f *testing.F) {
	f.Add("From: a\r\n\tcontinued\r\nTo: b\r\n\r\nbody")
	f.Add("no colon\n\n")
	f.Add("A: b")
	f.Add("\r\n")
	f.Fuzz(func(t *testing.T, msg string) {
		fields, rest := headerFields([]byte(msg))
		var joined bytes.Buffer
		for _, fl := range fields {
			joined.Write(fl)
		}
		joined.Write(rest)
		if joined.String() != msg {
			t.Errorf("fields and rest join to %q, want %q", joined.String(), msg)
		}
		out := removeAuthResults([]byte(msg), "mail.example.test")
		if !strings.HasSuffix(msg, string(rest)) || len(out) > len(msg) {
			t.Errorf("removeAuthResults grew the message")
		}
	})
}

func TestRemoveFields(t *testing.T) {
	header := "Bcc: a@x.test,\r\n b@x.test\r\nTo: c@x.test\r\nBCC : d@x.test\r\nReturn-Path: <e@x.test>\r\nSubject: Bcc: no\r\n"
	got := string(removeFields([]byte(header), "bcc", "return-path"))
	want := "To: c@x.test\r\nSubject: Bcc: no\r\n"
	if got != want {
		t.Errorf("removeFields:\ngot  %q\nwant %q", got, want)
	}
}
