package ddns

import (
	"net/netip"
	"slices"
	"time"

	"github.com/heimwolke/heimwolke/agent/netaddr"
)

// State is a snapshot of the loop's progress, for the admin UI and the
// control API's status.
type State struct {
	// Provider is Config.ProviderName.
	Provider string

	// IPv4 is the accepted public IPv4 address, and IPv4Class the kind of
	// connection. IPv4Disagreement lists the sources' answers when they
	// named different addresses in the last check, and is empty otherwise.
	IPv4             netip.Addr
	IPv4Class        netaddr.Class
	IPv4Disagreement string

	// IPv6 is the box's stable global IPv6 address, invalid when it has
	// none.
	IPv6 netip.Addr

	// Records has one entry per name and type, in the order of
	// Config.Names, A before AAAA.
	Records []RecordState

	// LastCheck is when the addresses were last looked up.
	LastCheck time.Time

	// LastUpdate is when the provider last accepted a change.
	LastUpdate time.Time

	// LastError describes the most recent failure, and LastErrorAt is its
	// time. Both stay after a later success, which resets Failures.
	LastError   string
	LastErrorAt time.Time

	// Failures counts failed updates in a row.
	Failures int

	// NextAttempt is the earliest time of the next update while the loop
	// backs off, and zero otherwise.
	NextAttempt time.Time
}

// RecordState is the state of one published record.
type RecordState struct {
	Name string // absolute, such as "mail.example.org."
	Type string // "A" or "AAAA"

	// Value is the address the record was last set to, invalid before the
	// first update or read.
	Value netip.Addr

	// Updated is when the provider last accepted this record, and Verified
	// when the authoritative server last returned it. Both are zero when
	// the loop found the record already in place at start.
	Updated  time.Time
	Verified time.Time

	// Error is the last failure of this record, empty after a success.
	Error string
}

// State returns a copy of the current state.
func (u *Updater) State() State {
	u.mu.Lock()
	defer u.mu.Unlock()
	s := u.state
	s.Records = slices.Clone(s.Records)
	return s
}

// updateState changes the state under the lock.
func (u *Updater) updateState(f func(*State)) {
	u.mu.Lock()
	defer u.mu.Unlock()
	f(&u.state)
}

// record returns the entry for name and type, adding it when it is new.
// The caller holds u.mu.
func (s *State) record(name, typ string) *RecordState {
	for i := range s.Records {
		if s.Records[i].Name == name && s.Records[i].Type == typ {
			return &s.Records[i]
		}
	}
	s.Records = append(s.Records, RecordState{Name: name, Type: typ})
	return &s.Records[len(s.Records)-1]
}
