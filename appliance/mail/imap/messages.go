package imap

import (
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"github.com/heimwolke/heimwolke/appliance/mail/store"
)

var errReadOnly = &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "Mailbox is read-only"}

// Store changes flags (RFC 9051 section 6.4.6) and, unless .SILENT, sends
// the new flags back.
func (sess *session) Store(w *imapserver.FetchWriter, numSet imap.NumSet, flags *imap.StoreFlags, options *imap.StoreOptions) error {
	if err := sess.checkLogin(); err != nil {
		return err
	}
	sel := sess.selected
	if sel.readOnly {
		return errReadOnly
	}
	targets := sel.live.resolve(sel.tracker, numSet)
	if len(targets) == 0 {
		return nil
	}
	op := map[imap.StoreFlagsOp]store.FlagOp{
		imap.StoreFlagsSet: store.FlagsSet,
		imap.StoreFlagsAdd: store.FlagsAdd,
		imap.StoreFlagsDel: store.FlagsRemove,
	}[flags.Op]
	_, err := sess.srv.opts.Store.StoreFlags(sess.ctx(), sel.mailbox.ID, filterRanges(targets), op, storeFlags(flags.Flags), sel.tracker)
	if err != nil {
		return sess.srv.storeError(err)
	}
	if flags.Silent {
		return nil
	}
	_, isUID := numSet.(imap.UIDSet)
	return sess.fetchTargets(w, targets, &imap.FetchOptions{Flags: true, UID: isUID})
}

// Expunge removes messages flagged \Deleted, all or those in uids (UID
// EXPUNGE, RFC 4315 section 2.1). The EXPUNGE responses reach this session
// through its tracker when imapserver polls after the command.
func (sess *session) Expunge(_ *imapserver.ExpungeWriter, uids *imap.UIDSet) error {
	if err := sess.checkLogin(); err != nil {
		return err
	}
	sel := sess.selected
	if sel.readOnly {
		return errReadOnly
	}
	var ranges []store.UIDRange
	if uids != nil {
		ranges = filterRanges(sel.live.resolve(sel.tracker, *uids))
		if len(ranges) == 0 {
			return nil
		}
	}
	if _, err := sess.srv.opts.Store.Expunge(sess.ctx(), sel.mailbox.ID, ranges, sel.tracker); err != nil {
		return sess.srv.storeError(err)
	}
	return nil
}

func copyData(res *store.CopyResult) *imap.CopyData {
	data := &imap.CopyData{UIDValidity: res.UIDValidity}
	for i := range res.SourceUIDs {
		data.SourceUIDs.AddNum(imap.UID(res.SourceUIDs[i]))
		data.DestUIDs.AddNum(imap.UID(res.DestUIDs[i]))
	}
	return data
}

// Copy copies messages to another mailbox (RFC 9051 section 6.4.7) and
// reports their new UIDs (RFC 4315 COPYUID).
func (sess *session) Copy(numSet imap.NumSet, dest string) (*imap.CopyData, error) {
	if err := sess.checkLogin(); err != nil {
		return nil, err
	}
	sel := sess.selected
	targets := sel.live.resolve(sel.tracker, numSet)
	if len(targets) == 0 {
		return &imap.CopyData{}, nil
	}
	res, err := sess.srv.opts.Store.Copy(sess.ctx(), sel.mailbox.ID, filterRanges(targets), sess.login, dest)
	if err != nil {
		return nil, sess.srv.tryCreate(err)
	}
	return copyData(res), nil
}

// Move moves messages to another mailbox (RFC 6851). The EXPUNGE responses
// follow the COPYUID response when imapserver polls after the command.
func (sess *session) Move(w *imapserver.MoveWriter, numSet imap.NumSet, dest string) error {
	if err := sess.checkLogin(); err != nil {
		return err
	}
	sel := sess.selected
	if sel.readOnly {
		return errReadOnly
	}
	targets := sel.live.resolve(sel.tracker, numSet)
	if len(targets) == 0 {
		return nil
	}
	res, err := sess.srv.opts.Store.Move(sess.ctx(), sel.mailbox.ID, filterRanges(targets), sess.login, dest, sel.tracker)
	if err != nil {
		return sess.srv.tryCreate(err)
	}
	return w.WriteCopyData(copyData(res))
}

// filterRanges returns UID ranges that cover exactly the targets, for
// commands that act on every row in the ranges.
func filterRanges(targets []target) []store.UIDRange {
	out := make([]store.UIDRange, 0, len(targets))
	for _, t := range targets {
		if n := len(out); n > 0 && out[n-1].Last+1 == t.uid {
			out[n-1].Last = t.uid
			continue
		}
		out = append(out, store.UIDRange{First: t.uid, Last: t.uid})
	}
	return out
}
