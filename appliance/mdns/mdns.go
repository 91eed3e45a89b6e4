// Package mdns is a multicast DNS responder (RFC 6762) that makes the box
// reachable as heimwolke.local: it answers A, AAAA and reverse PTR queries for
// one host name on every multicast link. It publishes no DNS-SD services and
// does not resolve names for the box itself.
package mdns

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/heimwolke/heimwolke/packages/ratelimit"
)

// DefaultHostname is the host name label that Serve claims when
// Options.Hostname is empty.
const DefaultHostname = "heimwolke"

// DefaultRescanInterval is how often Serve looks for interfaces that appeared,
// went away or changed their addresses, when Options.RescanInterval is zero.
const DefaultRescanInterval = 30 * time.Second

// Options configures Serve.
type Options struct {
	// Hostname is the label before ".local" that the responder claims, for
	// example "heimwolke". Empty means DefaultHostname. On a name conflict
	// the responder claims Hostname-2, Hostname-3 and so on.
	Hostname string
	// Logger receives starts, stops, conflicts and socket errors, and one
	// Debug line per ignored packet. Nil means slog.Default().
	Logger *slog.Logger
	// Interfaces lists the candidate interfaces. Nil means net.Interfaces.
	// Serve uses only those that are up and multicast-capable and are not
	// loopback interfaces.
	Interfaces func() ([]net.Interface, error)
	// RescanInterval is how often the interface list is read again, so that
	// interfaces and addresses that appear later are served. Zero means
	// DefaultRescanInterval.
	RescanInterval time.Duration
}

// RFC 6762 constants.
const (
	port = 5353
	// maxPacketSize is the largest packet the responder reads. RFC 6762
	// section 17 allows up to 9000 bytes, the size of an Ethernet jumbo
	// frame.
	maxPacketSize = 9000
	// maxQuestions bounds the work one packet can cause.
	maxQuestions = 32
	// hostTTL is the TTL of address and reverse-mapping records, in seconds
	// (RFC 6762 section 10: 120 s for records that carry a host name).
	hostTTL = 120
	// legacyTTL caps the TTL in legacy unicast responses, in seconds (RFC
	// 6762 section 6.7).
	legacyTTL = 10
	// cacheFlush is the top bit of a record's class in responses (RFC 6762
	// section 10.2). The same bit in a question's class is the
	// unicast-response (QU) bit (RFC 6762 section 5.4).
	cacheFlush      = 1 << 15
	unicastResponse = 1 << 15
)

var (
	group4 = netip.MustParseAddr("224.0.0.251")
	group6 = netip.MustParseAddr("ff02::fb")
)

// Serve claims Options.Hostname + ".local" on every usable interface and
// answers queries for it until ctx is canceled. It probes for the name and
// announces it at start, and sends goodbye records (TTL 0) before it returns.
// Interfaces that appear later are picked up within Options.RescanInterval.
// Serve returns nil after ctx is canceled, or an error for invalid options.
func Serve(ctx context.Context, opts Options) error {
	r, err := newResponder(opts)
	if err != nil {
		return err
	}
	r.log.Info("mdns responder starting", "hostname", r.hostname(), "rescan", r.rescan)
	r.run(ctx)
	r.log.Info("mdns responder stopped", "hostname", r.hostname())
	return nil
}

// responder is the state Serve shares between its main loop, which owns the
// links map, and one reader goroutine per socket.
type responder struct {
	log        *slog.Logger
	interfaces func() ([]net.Interface, error)
	rescan     time.Duration
	base       string
	// limiter caps the responses to one source for one name.
	limiter *ratelimit.Limiter
	// conflicts carries name conflicts from the readers to the main loop.
	conflicts chan conflict

	mu   sync.Mutex
	host string // fully qualified, "heimwolke.local."
	// own contains every address of every link, to recognise the
	// responder's own packets when they loop back.
	own map[netip.Addr]bool

	// The main loop alone uses the fields below.
	links         map[int]*link // by interface index
	renames       int
	conflictTimes []time.Time
	readers       sync.WaitGroup
}

func newResponder(opts Options) (*responder, error) {
	base := opts.Hostname
	if base == "" {
		base = DefaultHostname
	}
	if err := checkLabel(base); err != nil {
		return nil, err
	}
	r := &responder{
		log:        opts.Logger,
		interfaces: opts.Interfaces,
		rescan:     opts.RescanInterval,
		base:       base,
		// Two responses per second per source and name on average, with
		// bursts of 8, so that a lookup of A and AAAA with retries goes
		// through at once but a flood from one host is capped.
		limiter:   ratelimit.New(2, 8, 4096),
		conflicts: make(chan conflict, 1),
		host:      base + ".local.",
		own:       map[netip.Addr]bool{},
		links:     map[int]*link{},
	}
	if r.log == nil {
		r.log = slog.Default()
	}
	if r.interfaces == nil {
		r.interfaces = net.Interfaces
	}
	if r.rescan <= 0 {
		r.rescan = DefaultRescanInterval
	}
	return r, nil
}

// checkLabel rejects host names that are not a single DNS label of letters,
// digits and hyphens (RFC 1123 section 2.1), the form every mDNS client reads.
func checkLabel(label string) error {
	if len(label) > 63 || strings.HasPrefix(label, "-") || strings.HasSuffix(label, "-") {
		return fmt.Errorf("mdns: invalid host name %q: use 1 to 63 letters, digits and inner hyphens, without \".local\"", label)
	}
	for _, c := range label {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return fmt.Errorf("mdns: invalid host name %q: use 1 to 63 letters, digits and inner hyphens, without \".local\"", label)
		}
	}
	return nil
}

func (r *responder) hostname() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.host
}

func (r *responder) isOwn(a netip.Addr) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.own[a.WithZone("")]
}

// run is the main loop: it claims the name on links that are not ready yet,
// rescans the interfaces and handles conflicts until ctx is canceled.
func (r *responder) run(ctx context.Context) {
	ticker := time.NewTicker(r.rescan)
	defer ticker.Stop()
	defer r.closeAll()

	r.syncLinks()
	for {
		r.claim(ctx)
		select {
		case <-ctx.Done():
			r.goodbye()
			return
		case <-ticker.C:
			r.syncLinks()
		case c := <-r.conflicts:
			r.resolve(c)
		}
	}
}
