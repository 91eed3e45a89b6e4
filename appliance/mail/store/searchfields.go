package store

import (
	"bufio"
	"bytes"
	"mime"
	"strings"

	"github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/textproto"
)

// SearchFields are the header fields whose decoded values the index keeps
// for SEARCH. They are the fields that SEARCH has its own keys for (FROM,
// TO, CC, BCC and SUBJECT, RFC 9051 section 6.4.4).
var SearchFields = []string{"From", "To", "Cc", "Bcc", "Subject"}

var wordDecoder = &mime.WordDecoder{CharsetReader: charset.Reader}

// DecodeHeaderValue decodes RFC 2047 encoded words in an unfolded header
// value and lowers its case, for a case-insensitive substring match. A value
// that fails to decode is used as it is.
func DecodeHeaderValue(raw string) string {
	decoded, err := wordDecoder.DecodeHeader(raw)
	if err != nil {
		decoded = raw
	}
	return strings.ToLower(decoded)
}

// searchText returns the decoded values of the SearchFields in header, one
// per line, or nil for a header that was too large to index.
func searchText(header []byte) *string {
	if header == nil {
		return nil
	}
	h, _ := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(header)))
	var b strings.Builder
	for _, key := range SearchFields {
		for _, v := range h.Values(key) {
			b.WriteString(DecodeHeaderValue(v))
			b.WriteByte('\n')
		}
	}
	s := b.String()
	return &s
}
