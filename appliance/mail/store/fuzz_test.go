package store

import (
	"bytes"
	"io"
	"testing"
	"testing/iotest"
)

// FuzzCopyCRLF checks the line-end normalization and the header capture
// that every delivered message passes through.
func FuzzCopyCRLF(f *testing.F) {
	for _, seed := range []string{
		"Subject: a\r\n\r\nbody\r\n",
		"Subject: a\n\nbody\n",
		"\r\n\r\nno header",
		"a\rb\r\r\nc\n\r",
		"Subject: only a header",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		hw := &headerWriter{}
		// OneByteReader splits the input at every byte, the hardest case
		// for a CR and its LF arriving in different reads.
		n, err := copyCRLF(io.MultiWriter(&out, hw), iotest.OneByteReader(bytes.NewReader(in)), 1<<20)
		if err != nil {
			t.Fatal(err)
		}
		got := out.Bytes()
		if n != int64(len(got)) {
			t.Errorf("copyCRLF returned %d, wrote %d bytes", n, len(got))
		}
		for i, c := range got {
			if c == '\r' && (i+1 == len(got) || got[i+1] != '\n') {
				t.Fatalf("bare CR at %d in %q", i, got)
			}
			if c == '\n' && (i == 0 || got[i-1] != '\r') {
				t.Fatalf("bare LF at %d in %q", i, got)
			}
		}
		if want := bytes.Count(in, []byte("\n")) + bytes.Count(in, []byte("\r")) - bytes.Count(in, []byte("\r\n")); bytes.Count(got, []byte("\r\n")) != want {
			t.Errorf("got %d line ends, want %d, for %q", bytes.Count(got, []byte("\r\n")), want, in)
		}
		if h := hw.header(); !bytes.HasPrefix(got, h) {
			t.Errorf("header %q is no prefix of the message %q", h, got)
		}
	})
}
