// Package ddns keeps the A and AAAA records of the box's names in step with
// its public addresses. It publishes an address through a libdns provider
// only when it changes, verifies the change at the zone's authoritative
// server, and backs off when the provider fails or limits the rate.
package ddns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/libdns/libdns"
	"github.com/miekg/dns"

	"github.com/heimwolke/heimwolke/agent/netaddr"
)

// Defaults for the zero values of Config.
const (
	DefaultTTL           = 120 * time.Second
	DefaultCheckInterval = time.Minute
	DefaultMinBackoff    = 30 * time.Second
	DefaultMaxBackoff    = time.Hour
)

// MinTTL and MaxTTL bound Config.TTL. A TTL of at most five minutes lets
// resolvers drop an old address soon after it changes.
const (
	MinTTL = 60 * time.Second
	MaxTTL = 300 * time.Second
)

// IPv4Source finds the public IPv4 address; *netaddr.IPv4Finder is one.
type IPv4Source interface {
	Lookup(ctx context.Context) (netaddr.IPv4Report, error)
}

// IPv6Source finds the box's stable global IPv6 address;
// *netaddr.IPv6Finder is one.
type IPv6Source interface {
	Lookup() (addr netip.Addr, ok bool, err error)
}

// Config configures an Updater.
type Config struct {
	// Zone is the DNS zone at the provider, such as "example.org.".
	// Required.
	Zone string

	// Names are the names that get A and AAAA records: the domain itself
	// ("@" or "example.org.") and the service names ("mail", "xmpp" or
	// "mail.example.org."). Absolute names must lie in Zone. Required.
	Names []string

	// TTL of the published records, between MinTTL and MaxTTL. Zero
	// means DefaultTTL.
	TTL time.Duration

	// Provider changes the records. If it is also a libdns.RecordGetter,
	// Run first reads the published records, so that a restart publishes
	// nothing that is already there. Required.
	Provider libdns.RecordSetter

	// ProviderName names the provider in the state and in logs, such as
	// "rfc2136" or "hetzner".
	ProviderName string

	// IPv4 finds the address for A records. Nil publishes no A records.
	IPv4 IPv4Source

	// IPv6 finds the address for AAAA records. Nil publishes no AAAA
	// records.
	IPv6 IPv6Source

	// Changes reports changes of the box's interface addresses, from
	// netaddr.WatchAddrs, so that a new IPv6 prefix is published at once.
	// Nil means Run only checks every CheckInterval.
	Changes <-chan struct{}

	// Verifier checks each published record at the authoritative server.
	// Nil skips verification.
	Verifier Verifier

	// CheckInterval is the time between two address checks. Zero means
	// DefaultCheckInterval.
	CheckInterval time.Duration

	// MinBackoff and MaxBackoff bound the wait after a failed update,
	// which doubles with every failure in a row. Zero means
	// DefaultMinBackoff and DefaultMaxBackoff.
	MinBackoff, MaxBackoff time.Duration

	// Logger receives one line per event. Nil means slog.Default().
	Logger *slog.Logger
}

// Updater is the dynamic DNS loop. Create it with New, start it with Run,
// and read its progress with State from any goroutine.
type Updater struct {
	cfg   Config
	names []string // relative to the zone, "@" for the apex
	log   *slog.Logger

	mu    sync.Mutex
	state State
}

// New checks cfg, fills in its defaults and returns an Updater. The error
// lists every problem in cfg.
func New(cfg Config) (*Updater, error) {
	names, err := cfg.validate()
	if err != nil {
		return nil, err
	}
	cfg.Zone = dns.CanonicalName(cfg.Zone)
	cfg.setDefaults()

	u := &Updater{cfg: cfg, names: names, log: cfg.Logger}
	u.state.Provider = cfg.ProviderName
	return u, nil
}

func (cfg *Config) setDefaults() {
	if cfg.TTL == 0 {
		cfg.TTL = DefaultTTL
	}
	if cfg.CheckInterval == 0 {
		cfg.CheckInterval = DefaultCheckInterval
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = DefaultMinBackoff
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = DefaultMaxBackoff
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	cfg.Logger = cfg.Logger.With("zone", cfg.Zone, "provider", cfg.ProviderName)
}

// validate returns the names relative to the zone, or an error that lists
// every problem of cfg.
func (cfg *Config) validate() ([]string, error) {
	var problems []string
	add := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	zone := dns.CanonicalName(cfg.Zone)
	if cfg.Zone == "" {
		add("zone is missing: set it to the domain at the DNS provider, such as example.org.")
	} else if _, ok := dns.IsDomainName(zone); !ok {
		add("zone %q is not a valid domain name", cfg.Zone)
	}
	if cfg.Provider == nil {
		add("provider is missing: configure the DNS provider")
	}
	if cfg.IPv4 == nil && cfg.IPv6 == nil {
		add("no address source: set IPv4, IPv6 or both")
	}
	if cfg.TTL != 0 && (cfg.TTL < MinTTL || cfg.TTL > MaxTTL) {
		add("TTL %v is out of range: use %v to %v", cfg.TTL, MinTTL, MaxTTL)
	}
	durations := []struct {
		name  string
		value time.Duration
	}{{"check interval", cfg.CheckInterval}, {"min backoff", cfg.MinBackoff}, {"max backoff", cfg.MaxBackoff}}
	for _, d := range durations {
		if d.value < 0 {
			add("%s %v is negative: use zero for the default", d.name, d.value)
		}
	}
	if cfg.MinBackoff != 0 && cfg.MaxBackoff != 0 && cfg.MinBackoff > cfg.MaxBackoff {
		add("min backoff %v is longer than max backoff %v", cfg.MinBackoff, cfg.MaxBackoff)
	}

	names, nameProblems := relativeNames(cfg.Names, zone)
	problems = append(problems, nameProblems...)

	if len(problems) > 0 {
		return nil, fmt.Errorf("invalid dynamic DNS configuration: %s", strings.Join(problems, "; "))
	}
	return names, nil
}

// relativeNames turns names into names relative to zone, as libdns records
// carry them, and reports those outside the zone.
func relativeNames(names []string, zone string) ([]string, []string) {
	if len(names) == 0 {
		return nil, []string{"names are missing: list the domain (@) and the service names"}
	}
	var relative, problems []string
	for _, name := range names {
		rel, err := relativeName(name, zone)
		if err != nil {
			problems = append(problems, err.Error())
			continue
		}
		if !containsFold(relative, rel) {
			relative = append(relative, rel)
		}
	}
	return relative, problems
}

func relativeName(name, zone string) (string, error) {
	name = strings.ToLower(strings.TrimSpace(name))
	switch {
	case name == "":
		return "", errors.New("a name is empty: use @ for the domain itself")
	case name == "@" || name == zone:
		return "@", nil
	case !strings.HasSuffix(name, "."):
		if _, ok := dns.IsDomainName(name); !ok {
			return "", fmt.Errorf("name %q is not a valid domain name", name)
		}
		return name, nil
	case !dns.IsSubDomain(zone, name):
		return "", fmt.Errorf("name %q is outside zone %s: use a name in the zone, or a relative one", name, zone)
	}
	return libdns.RelativeName(name, zone), nil
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
