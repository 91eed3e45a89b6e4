package imap

import (
	"context"
	"slices"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/heimwolke/heimwolke/appliance/mail/store"
)

// liveMailbox is the server's view of a mailbox that at least one session
// has selected: the UIDs in sequence order, and the tracker that queues
// EXISTS, EXPUNGE and FETCH updates for each session.
type liveMailbox struct {
	id      int64
	tracker *imapserver.MailboxTracker

	mu   sync.Mutex
	uids []uint32 // ascending; index i is sequence number i+1
	refs int      // guarded by Server.liveMu
}

// openLive returns the live view of a mailbox, loading it on first use, and
// a new session tracker in it.
func (s *Server) openLive(ctx context.Context, mailboxID int64) (*liveMailbox, *imapserver.SessionTracker, error) {
	s.liveMu.Lock()
	if lm := s.live[mailboxID]; lm != nil {
		lm.refs++
		s.liveMu.Unlock()
		return lm, lm.tracker.NewSession(), nil
	}
	s.liveMu.Unlock()

	var lm *liveMailbox
	err := s.opts.Store.Snapshot(ctx, mailboxID, func(uids []uint32) {
		// The store's write lock is held, so no event for this mailbox
		// runs until the view is registered.
		s.liveMu.Lock()
		defer s.liveMu.Unlock()
		lm = s.live[mailboxID]
		if lm == nil {
			lm = &liveMailbox{id: mailboxID, uids: uids, tracker: imapserver.NewMailboxTracker(uint32(len(uids)))}
			s.live[mailboxID] = lm
		}
		lm.refs++
	})
	if err != nil {
		return nil, nil, err
	}
	return lm, lm.tracker.NewSession(), nil
}

func (s *Server) closeLive(lm *liveMailbox, st *imapserver.SessionTracker) {
	st.Close()
	s.liveMu.Lock()
	defer s.liveMu.Unlock()
	if lm.refs--; lm.refs == 0 {
		delete(s.live, lm.id)
	}
}

// onEvent applies a committed store change to the live view and queues the
// updates for the sessions. It runs under the store's write lock.
func (s *Server) onEvent(ev store.Event) {
	s.liveMu.Lock()
	lm := s.live[ev.MailboxID]
	s.liveMu.Unlock()
	if lm == nil {
		return
	}
	lm.mu.Lock()
	defer lm.mu.Unlock()

	switch ev.Kind {
	case store.EventAdded:
		// One EXISTS per message, because SessionTracker.EncodeSeqNum
		// handles only increments of one.
		for _, uid := range ev.UIDs {
			lm.uids = append(lm.uids, uid)
			lm.tracker.QueueNumMessages(uint32(len(lm.uids)))
		}
	case store.EventExpunged:
		for _, uid := range ev.UIDs {
			i, found := slices.BinarySearch(lm.uids, uid)
			if !found {
				continue
			}
			lm.uids = slices.Delete(lm.uids, i, i+1)
			lm.tracker.QueueExpunge(uint32(i + 1))
		}
	case store.EventFlags:
		source, _ := ev.Source.(*imapserver.SessionTracker)
		for _, uid := range ev.UIDs {
			if i, found := slices.BinarySearch(lm.uids, uid); found {
				lm.tracker.QueueMessageFlags(uint32(i+1), imap.UID(uid), imapFlags(ev.Flags), source)
			}
		}
	}
}

func imapFlags(flags []string) []imap.Flag {
	out := make([]imap.Flag, len(flags))
	for i, f := range flags {
		out[i] = imap.Flag(f)
	}
	return out
}

func storeFlags(flags []imap.Flag) []string {
	out := make([]string, len(flags))
	for i, f := range flags {
		out[i] = string(f)
	}
	return out
}

// target is a message that a command addresses: its UID and its sequence
// number as the session's client knows it.
type target struct {
	uid uint32
	seq uint32
}

// resolve turns a sequence or UID set from the client into targets in UID
// order. Messages the client does not know yet, or that are already
// expunged, are left out.
func (lm *liveMailbox) resolve(st *imapserver.SessionTracker, numSet imap.NumSet) []target {
	lm.mu.Lock()
	defer lm.mu.Unlock()

	var out []target
	switch set := numSet.(type) {
	case imap.SeqSet:
		maxSeq := lm.maxClientSeq(st)
		for _, r := range set {
			first, last := staticRange(r.Start, r.Stop, maxSeq)
			last = min(last, maxSeq)
			for seq := max(first, 1); seq <= last; seq++ {
				if srv := st.DecodeSeqNum(seq); srv != 0 {
					out = append(out, target{uid: lm.uids[srv-1], seq: seq})
				}
			}
		}
	case imap.UIDSet:
		var maxUID uint32
		if len(lm.uids) > 0 {
			maxUID = lm.uids[len(lm.uids)-1]
		}
		for _, r := range set {
			first, last := staticRange(uint32(r.Start), uint32(r.Stop), maxUID)
			i, _ := slices.BinarySearch(lm.uids, first)
			for ; i < len(lm.uids) && lm.uids[i] <= last; i++ {
				if seq := st.EncodeSeqNum(uint32(i + 1)); seq != 0 {
					out = append(out, target{uid: lm.uids[i], seq: seq})
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b target) int { return int(int64(a.uid) - int64(b.uid)) })
	return slices.CompactFunc(out, func(a, b target) bool { return a.uid == b.uid })
}

// maxClientSeq returns the highest sequence number that the session has
// announced to its client.
func (lm *liveMailbox) maxClientSeq(st *imapserver.SessionTracker) uint32 {
	for i := len(lm.uids); i > 0; i-- {
		if seq := st.EncodeSeqNum(uint32(i)); seq != 0 {
			return seq
		}
	}
	return 0
}

// staticRange replaces "*" (0 in go-imap) by max and orders the bounds (RFC
// 9051 section 9, seq-range).
func staticRange(start, stop, max uint32) (uint32, uint32) {
	if start == 0 {
		start = max
	}
	if stop == 0 {
		stop = max
	}
	if start > stop {
		start, stop = stop, start
	}
	return start, stop
}

// uidRanges groups targets into UID ranges for a store query. The ranges may
// cover UIDs that are not targets; callers filter with contains.
func uidRanges(targets []target) []store.UIDRange {
	var out []store.UIDRange
	for _, t := range targets {
		if n := len(out); n > 0 && out[n-1].Last+1 == t.uid {
			out[n-1].Last = t.uid
			continue
		}
		out = append(out, store.UIDRange{First: t.uid, Last: t.uid})
	}
	if len(out) > maxQueryRanges {
		// A long list of BETWEEN terms is slower than one range and the
		// callers' filtering.
		return []store.UIDRange{{First: out[0].First, Last: out[len(out)-1].Last}}
	}
	return out
}

const maxQueryRanges = 50

// findTarget returns the target with uid, or false.
func findTarget(targets []target, uid uint32) (target, bool) {
	i, found := slices.BinarySearchFunc(targets, uid, func(t target, uid uint32) int { return int(int64(t.uid) - int64(uid)) })
	if !found {
		return target{}, false
	}
	return targets[i], true
}
