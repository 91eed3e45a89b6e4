package imap

import (
	"bufio"
	"bytes"
	netmail "net/mail"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-message/textproto"

	"github.com/heimwolke/heimwolke/appliance/mail/store"
)

// Search serves SEARCH and UID SEARCH (RFC 9051 section 6.4.4) by scanning
// the mailbox's index rows. Header keys use the indexed header sections,
// and only BODY and TEXT read message files.
func (sess *session) Search(kind imapserver.NumKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (*imap.SearchData, error) {
	if err := sess.checkLogin(); err != nil {
		return nil, err
	}
	sel := sess.selected
	all := sel.live.resolve(sel.tracker, imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}})
	sc := &searchContext{
		maxSeq: uint32(len(all)),
	}
	if len(all) > 0 {
		sc.maxUID = all[len(all)-1].uid
	}
	needHeader, needBody := criteriaNeeds(criteria)

	var (
		data   imap.SearchData
		seqSet imap.SeqSet
		uidSet imap.UIDSet
	)
	prefilter := headerPrefilter(criteria)
	err := sess.srv.opts.Store.EachMessageFiltered(sess.ctx(), sel.mailbox.ID, uidRanges(all), needHeader && !needBody, prefilter, func(m *store.Message) error {
		t, ok := findTarget(all, m.UID)
		if !ok {
			return nil
		}
		cand := &candidate{msg: m, seq: t.seq}
		if needBody || (needHeader && m.Header == nil) {
			content, err := sess.messageContent(m)
			if err != nil {
				return err
			}
			cand.content = content
			cand.header = headerOf(content)
		} else {
			cand.header = m.Header
		}
		if !sc.match(criteria, cand) {
			return nil
		}
		num := t.seq
		if kind == imapserver.NumKindUID {
			num = t.uid
			uidSet.AddNum(imap.UID(t.uid))
		} else {
			seqSet.AddNum(t.seq)
		}
		if data.Min == 0 || num < data.Min {
			data.Min = num
		}
		data.Max = max(data.Max, num)
		data.Count++
		return nil
	})
	if err != nil {
		return nil, sess.srv.storeError(err)
	}
	if kind == imapserver.NumKindUID {
		data.All = uidSet
	} else {
		data.All = seqSet
	}
	return &data, nil
}

// headerPrefilter returns the strings that the store's search column of
// every matching message contains: the values of the top-level keys on the
// store's SearchFields. The top level of criteria is an AND, while keys
// inside OR and NOT cannot narrow the scan.
func headerPrefilter(c *imap.SearchCriteria) []string {
	var out []string
	for _, f := range c.Header {
		if f.Value != "" && slices.ContainsFunc(store.SearchFields, func(k string) bool { return strings.EqualFold(k, f.Key) }) {
			out = append(out, strings.ToLower(f.Value))
		}
	}
	return out
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// criteriaNeeds reports whether matching needs header sections or whole
// messages.
func criteriaNeeds(c *imap.SearchCriteria) (header, body bool) {
	header = len(c.Header) > 0 || !c.SentSince.IsZero() || !c.SentBefore.IsZero()
	body = len(c.Body) > 0 || len(c.Text) > 0
	for i := range c.Not {
		h, b := criteriaNeeds(&c.Not[i])
		header, body = header || h, body || b
	}
	for i := range c.Or {
		for j := range c.Or[i] {
			h, b := criteriaNeeds(&c.Or[i][j])
			header, body = header || h, body || b
		}
	}
	return header, body
}

// headerOf returns the header section at the start of a message.
func headerOf(content []byte) []byte {
	if bytes.HasPrefix(content, []byte("\r\n")) {
		return content[:2]
	}
	if i := bytes.Index(content, []byte("\r\n\r\n")); i >= 0 {
		return content[:i+4]
	}
	return content
}

type searchContext struct {
	maxSeq uint32
	maxUID uint32
}

// candidate is a message under test, with its header parsed on first use.
type candidate struct {
	msg     *store.Message
	seq     uint32
	header  []byte
	content []byte // nil unless BODY or TEXT is searched

	parsed      bool
	parsedField textproto.Header
}

func (c *candidate) fields() textproto.Header {
	if !c.parsed {
		c.parsed = true
		h, _ := textproto.ReadHeader(bufio.NewReader(bytes.NewReader(c.header)))
		c.parsedField = h
	}
	return c.parsedField
}

func (sc *searchContext) match(c *imap.SearchCriteria, m *candidate) bool {
	for _, set := range c.SeqNum {
		if !seqSetContains(set, m.seq, sc.maxSeq) {
			return false
		}
	}
	for _, set := range c.UID {
		if !uidSetContains(set, m.msg.UID, sc.maxUID) {
			return false
		}
	}
	if !matchDates(c, m) || !matchFlags(c, m.msg.Flags) {
		return false
	}
	if c.Larger > 0 && m.msg.Size <= c.Larger {
		return false
	}
	if c.Smaller > 0 && m.msg.Size >= c.Smaller {
		return false
	}
	for _, f := range c.Header {
		if !matchHeaderField(m, f.Key, f.Value) {
			return false
		}
	}
	for _, s := range c.Body {
		if !containsFold(m.content[min(len(m.header), len(m.content)):], s) {
			return false
		}
	}
	for _, s := range c.Text {
		if !containsFold(m.content, s) {
			return false
		}
	}
	for i := range c.Not {
		if sc.match(&c.Not[i], m) {
			return false
		}
	}
	for i := range c.Or {
		if !sc.match(&c.Or[i][0], m) && !sc.match(&c.Or[i][1], m) {
			return false
		}
	}
	return true
}

func seqSetContains(set imap.SeqSet, seq, maxSeq uint32) bool {
	for _, r := range set {
		first, last := staticRange(r.Start, r.Stop, maxSeq)
		if seq >= first && seq <= last {
			return true
		}
	}
	return false
}

func uidSetContains(set imap.UIDSet, uid, maxUID uint32) bool {
	for _, r := range set {
		first, last := staticRange(uint32(r.Start), uint32(r.Stop), maxUID)
		if uid >= first && uid <= last {
			return true
		}
	}
	return false
}

// dayOf returns the date of t as midnight UTC. RFC 9051 section 6.4.4 makes
// the date keys ignore time and timezone.
func dayOf(t time.Time) time.Time {
	y, mo, d := t.Date()
	return time.Date(y, mo, d, 0, 0, 0, 0, time.UTC)
}

func matchDates(c *imap.SearchCriteria, m *candidate) bool {
	if !c.Since.IsZero() && dayOf(m.msg.InternalDate).Before(dayOf(c.Since)) {
		return false
	}
	if !c.Before.IsZero() && !dayOf(m.msg.InternalDate).Before(dayOf(c.Before)) {
		return false
	}
	if c.SentSince.IsZero() && c.SentBefore.IsZero() {
		return true
	}
	fields := m.fields()
	sent, err := netmail.ParseDate(fields.Get("Date"))
	if err != nil {
		return false
	}
	if !c.SentSince.IsZero() && dayOf(sent).Before(dayOf(c.SentSince)) {
		return false
	}
	if !c.SentBefore.IsZero() && !dayOf(sent).Before(dayOf(c.SentBefore)) {
		return false
	}
	return true
}

func matchFlags(c *imap.SearchCriteria, flags []string) bool {
	has := func(f imap.Flag) bool {
		for _, g := range flags {
			if strings.EqualFold(g, string(f)) {
				return true
			}
		}
		return false
	}
	for _, f := range c.Flag {
		if !has(f) {
			return false
		}
	}
	for _, f := range c.NotFlag {
		if has(f) {
			return false
		}
	}
	return true
}

// matchHeaderField reports whether a field named key contains value,
// case-insensitively, after RFC 2047 decoding. An empty value matches any
// message with the field (RFC 9051 section 6.4.4, HEADER).
func matchHeaderField(m *candidate, key, value string) bool {
	needle := strings.ToLower(value)
	if needle != "" && !headerMayContain(m.header, needle) {
		// Most headers lack the needle entirely, so they are not parsed.
		return false
	}
	fields := m.fields()
	for _, raw := range fields.Values(key) {
		if needle == "" {
			return true
		}
		if strings.Contains(store.DecodeHeaderValue(raw), needle) {
			return true
		}
	}
	return false
}

// headerMayContain reports whether a field value of the raw header section
// can contain needle after decoding and unfolding. That is the case when the
// raw bytes contain it, when an RFC 2047 encoded word could hide it, or when
// a folded line (RFC 5322 section 2.2.3) could split a needle with
// whitespace.
func headerMayContain(header []byte, needle string) bool {
	if containsFold(header, needle) || bytes.Contains(header, []byte("=?")) {
		return true
	}
	if !strings.ContainsAny(needle, " \t") {
		return false
	}
	return bytes.Contains(header, []byte("\n ")) || bytes.Contains(header, []byte("\n\t"))
}

// containsFold reports whether s occurs in b, ignoring case. An ASCII s is
// searched without copying b, since this runs for every message of a
// mailbox.
// NOTE: BODY and TEXT compare against the raw message without decoding
// quoted-printable, base64 or charsets, so encoded text is not found.
func containsFold(b []byte, s string) bool {
	s = strings.ToLower(s)
	if s == "" {
		return true
	}
	if !isASCII(s) {
		return bytes.Contains(bytes.ToLower(b), []byte(s))
	}
	first, firstUpper := s[0], s[0]
	if 'a' <= first && first <= 'z' {
		firstUpper = first - 'a' + 'A'
	}
	for i := 0; i+len(s) <= len(b); i++ {
		if c := b[i]; c != first && c != firstUpper {
			continue
		}
		if equalFoldASCII(b[i+1:i+len(s)], s[1:]) {
			return true
		}
	}
	return false
}

// equalFoldASCII reports whether b equals the lower-case ASCII string s,
// ignoring the case of b's ASCII letters.
func equalFoldASCII(b []byte, s string) bool {
	for i := range len(s) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}
