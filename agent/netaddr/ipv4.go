package netaddr

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
)

// Answer is one source's reply to a lookup.
type Answer struct {
	Source string
	Addr   netip.Addr // invalid when Err is set
	Err    error
}

// IPv4Report is the result of one IPv4Finder.Lookup.
type IPv4Report struct {
	// Addr is the accepted public address: the new one when the sources
	// agreed on a change, otherwise the one accepted before. Invalid when
	// no address was ever accepted.
	Addr netip.Addr

	// Changed is true when this lookup accepted a new Addr.
	Changed bool

	// Candidate is the address most sources named when it differs from
	// Addr but was not accepted, because too few sources agreed.
	Candidate netip.Addr

	// WAN is the router's WAN address, invalid without a router answer.
	WAN netip.Addr

	// Class classifies the connection from WAN and Addr.
	Class Class

	// Disagreement is true when sources named different public
	// addresses. Answers shows which.
	Disagreement bool

	// Answers holds every source's reply, the router first.
	Answers []Answer
}

// DisagreementText returns "source=address, ..." for the answers that
// named an address, for a log line.
func (r IPv4Report) DisagreementText() string {
	var parts []string
	for _, a := range r.Answers {
		if a.Err == nil {
			parts = append(parts, a.Source+"="+a.Addr.String())
		}
	}
	return strings.Join(parts, ", ")
}

// IPv4Finder queries the router and outside sources for the public IPv4 address
// and accepts a change only when at least two sources name the same new
// address, or, with a single source, when it names it twice in a row. Its
// methods are safe for concurrent use.
type IPv4Finder struct {
	// Router is the home router, or nil when it cannot be asked. Its WAN
	// address classifies the connection, and counts as a vote when it is
	// a public address.
	Router RouterSource

	// Sources are the outside DNS and HTTP sources.
	Sources []IPv4Source

	// ConfirmDelay is how long a lone source waits before it is asked a
	// second time to confirm a change. Zero means 10 seconds.
	ConfirmDelay time.Duration

	// Timeout bounds each source's answer. Zero means 10 seconds.
	Timeout time.Duration

	// Logger receives one line per accepted change and per disagreement.
	// Nil means slog.Default().
	Logger *slog.Logger

	mu      sync.Mutex
	current netip.Addr
}

// Lookup queries every source at once and applies the agreement rule. It
// returns an error only when ctx ends or no source is configured; failures
// of single sources are in the report's Answers.
func (f *IPv4Finder) Lookup(ctx context.Context) (IPv4Report, error) {
	sources := f.sources()
	if len(sources) == 0 {
		return IPv4Report{}, errors.New("looking up the public IPv4 address: no router and no outside source configured")
	}

	answers := f.ask(ctx, sources)
	if err := ctx.Err(); err != nil {
		return IPv4Report{}, err
	}

	f.mu.Lock()
	current := f.current
	f.mu.Unlock()

	report := IPv4Report{Answers: answers}
	votes := countVotes(answers)
	report.Disagreement = len(votes) > 1
	candidate, accepted := agree(votes, len(sources), current)

	if len(sources) == 1 && candidate.IsValid() && candidate != current {
		accepted = f.confirm(ctx, sources[0], candidate)
	}

	report.Addr = current
	if accepted && candidate != current {
		report.Addr = candidate
		report.Changed = true
	} else if candidate != current {
		report.Candidate = candidate
	}

	var routerErr error
	if f.Router != nil {
		report.WAN, routerErr = answers[0].Addr, answers[0].Err
	}
	report.Class = Classify(report.WAN, report.Addr, routerErr)

	f.record(report)
	return report, nil
}

func (f *IPv4Finder) sources() []IPv4Source {
	var all []IPv4Source
	if f.Router != nil {
		all = append(all, Router(f.Router))
	}
	return append(all, f.Sources...)
}

func (f *IPv4Finder) ask(ctx context.Context, sources []IPv4Source) []Answer {
	timeout := f.Timeout
	if timeout == 0 {
		timeout = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	answers := make([]Answer, len(sources))
	var wg sync.WaitGroup
	for i, s := range sources {
		wg.Go(func() {
			a, err := s.IPv4(ctx)
			answers[i] = Answer{Source: s.Name(), Addr: a, Err: err}
		})
	}
	wg.Wait()
	return answers
}

// confirm queries a lone source a second time after ConfirmDelay and reports
// whether it names candidate again.
func (f *IPv4Finder) confirm(ctx context.Context, s IPv4Source, candidate netip.Addr) bool {
	delay := f.ConfirmDelay
	if delay == 0 {
		delay = 10 * time.Second
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(delay):
	}
	again := f.ask(ctx, []IPv4Source{s})
	votes := countVotes(again)
	return votes[candidate] == 1
}

func (f *IPv4Finder) record(r IPv4Report) {
	log := f.Logger
	if log == nil {
		log = slog.Default()
	}

	f.mu.Lock()
	f.current = r.Addr
	f.mu.Unlock()

	if r.Changed {
		log.Info("public ipv4 changed", "addr", r.Addr, "class", r.Class, "answers", r.DisagreementText())
	}
	if r.Disagreement {
		log.Warn("ipv4 sources disagree", "accepted", r.Addr, "answers", r.DisagreementText())
	}
}

// countVotes counts how many answers name each public IPv4 address. A
// private, shared or DS-Lite address, such as a router's WAN address behind
// CGNAT, is no vote.
func countVotes(answers []Answer) map[netip.Addr]int {
	votes := map[netip.Addr]int{}
	for _, a := range answers {
		if a.Err == nil && IsPublicIPv4(a.Addr) {
			votes[a.Addr]++
		}
	}
	return votes
}

// agree picks the address with the most votes and reports whether the
// agreement rule accepts it: a change needs two votes when two or more
// sources are configured, and the current address stays with any majority.
// With a single configured source, a change is a candidate only, which the
// caller confirms by asking again. A tie between addresses accepts nothing.
func agree(votes map[netip.Addr]int, configured int, current netip.Addr) (netip.Addr, bool) {
	var best netip.Addr
	bestVotes, tie := 0, false
	for _, addr := range sortedAddrs(votes) {
		switch n := votes[addr]; {
		case n > bestVotes:
			best, bestVotes, tie = addr, n, false
		case n == bestVotes:
			tie = true
		}
	}

	switch {
	case bestVotes == 0:
		return netip.Addr{}, false
	case tie && votes[current] == bestVotes:
		return current, true
	case tie:
		return netip.Addr{}, false
	case best == current:
		return best, true
	case configured == 1:
		return best, false
	}
	return best, bestVotes >= 2
}

func sortedAddrs(votes map[netip.Addr]int) []netip.Addr {
	addrs := make([]netip.Addr, 0, len(votes))
	for a := range votes {
		addrs = append(addrs, a)
	}
	slices.SortFunc(addrs, netip.Addr.Compare)
	return addrs
}

// String returns a short description of the report for logs.
func (r IPv4Report) String() string {
	return fmt.Sprintf("addr=%v class=%s answers=[%s]", r.Addr, r.Class, r.DisagreementText())
}
