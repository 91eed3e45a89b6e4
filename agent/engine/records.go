package engine

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"time"

	"github.com/libdns/libdns"

	"github.com/heimwolke/heimwolke/packages/control"
	"github.com/heimwolke/heimwolke/packages/dnscheck"
	"github.com/heimwolke/heimwolke/packages/dnsprovider/rrconv"
)

// recordsCheckInterval is how often the services' records are checked at
// the zone's servers, and published again when one is missing or wrong.
const recordsCheckInterval = 10 * time.Minute

// recordsRetry is the wait after a failed publish.
const recordsRetry = 2 * time.Minute

// PublishRecords sets the DNS records that heimwolke's services need. The
// same records again change nothing, so heimwolke may send them often.
func (e *Engine) PublishRecords(r control.ServiceRecords) {
	zone := strings.TrimSuffix(r.Zone, ".")
	var recs []libdns.Record
	for _, sr := range r.Records {
		rec, err := rrconv.ParsePresentation(zone+".", sr.Name, sr.Type, time.Duration(sr.TTL)*time.Second, sr.Data)
		if err != nil {
			e.log.Error("ignoring a service record", "zone", zone, "name", sr.Name, "type", sr.Type, "err", err)
			continue
		}
		recs = append(recs, rec)
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if reflect.DeepEqual(e.desired, recs) && e.desiredZone == zone {
		return
	}
	e.desired, e.desiredZone = recs, zone
	e.log.Info("service records received", "zone", zone, "records", len(recs))
	if e.records != nil {
		select {
		case e.records <- struct{}{}:
		default:
		}
	}
}

// runRecords publishes and checks the desired records until ctx ends. It
// runs for settings with a domain.
func (e *Engine) runRecords(ctx context.Context, p provider, wake chan struct{}) error {
	resolver := dnscheck.Resolver{}
	if p.server != "" {
		resolver.Servers = []string{p.server}
	}
	var published []libdns.Record
	for {
		e.mu.Lock()
		zone, desired := e.desiredZone, e.desired
		e.mu.Unlock()

		wait := recordsCheckInterval
		if len(desired) > 0 {
			if setter, ok := p.acme.(libdns.RecordSetter); ok && !reflect.DeepEqual(published, desired) {
				err := e.publishRecords(ctx, setter, zone, desired)
				e.setPublishError(err)
				if err != nil {
					wait = recordsRetry
				} else {
					published = desired
				}
			}
			e.checkRecords(ctx, resolver, zone, desired)
			if e.recordsBad() {
				// Publish again at the next round: someone may have
				// changed the zone by hand.
				published = nil
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-wake:
		case <-time.After(wait):
		}
	}
}

// publishRecords sets each RRset of desired. TXT records at a name also
// keep the other TXT records there, such as a site verification, and
// replace only those of the same kind (the same "v=" tag).
func (e *Engine) publishRecords(ctx context.Context, setter libdns.RecordSetter, zone string, desired []libdns.Record) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	recs := desired
	if getter, ok := setter.(libdns.RecordGetter); ok {
		existing, err := getter.GetRecords(ctx, zone+".")
		if err != nil {
			return fmt.Errorf("reading zone %s before publishing: %w", zone, err)
		}
		recs = mergeTXT(desired, existing)
	}
	if _, err := setter.SetRecords(ctx, zone+".", recs); err != nil {
		return fmt.Errorf("publishing %d service records in %s: %w", len(recs), zone, err)
	}
	e.log.Info("service records published", "zone", zone, "records", len(recs))
	return nil
}

// mergeTXT returns desired plus the existing TXT records at the names of
// desired TXT records whose kind no desired record there has, because
// SetRecords replaces a whole RRset.
func mergeTXT(desired, existing []libdns.Record) []libdns.Record {
	kinds := map[string]map[string]bool{} // name -> kinds
	for _, w := range desired {
		rr := w.RR()
		if rr.Type == "TXT" {
			if kinds[rr.Name] == nil {
				kinds[rr.Name] = map[string]bool{}
			}
			kinds[rr.Name][txtKind(rr.Data)] = true
		}
	}
	out := append([]libdns.Record(nil), desired...)
	for _, x := range existing {
		rr := x.RR()
		if rr.Type != "TXT" || kinds[rr.Name] == nil || kinds[rr.Name][txtKind(rr.Data)] {
			continue
		}
		out = append(out, x)
	}
	return out
}

// txtKind returns the tag that names a TXT record's kind, such as
// "v=spf1" or "v=DMARC1", or the whole text when it has none.
func txtKind(text string) string {
	text = strings.Trim(text, `"`)
	kind, _, _ := strings.Cut(text, " ")
	kind, _, _ = strings.Cut(kind, ";")
	if strings.HasPrefix(strings.ToLower(kind), "v=") {
		return strings.ToLower(kind)
	}
	return text
}

// checkRecords queries the zone's servers for every desired record and keeps
// the result for the status.
func (e *Engine) checkRecords(ctx context.Context, r dnscheck.Resolver, zone string, desired []libdns.Record) {
	ctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	statuses, err := dnscheck.Check(ctx, r, zone+".", desired)
	now := time.Now()
	e.mu.Lock()
	defer e.mu.Unlock()
	if err != nil {
		e.checkErr = fmt.Sprintf("checking the service records of %s: %v", zone, err)
		return
	}
	e.checkErr = ""
	e.recordsState = e.recordsState[:0]
	for _, st := range statuses {
		rr := st.Record.RR()
		rs := control.RecordStatus{Name: libdns.AbsoluteName(rr.Name, zone), Type: rr.Type, Value: rr.Data, LastUpdate: now}
		switch st.State {
		case dnscheck.Published:
			rs.State = "published"
		case dnscheck.Missing:
			rs.State = "missing"
		case dnscheck.Wrong:
			rs.State = "wrong"
		default:
			rs.State = "pending"
			rs.LastError = st.String()
		}
		e.recordsState = append(e.recordsState, rs)
	}
}

// setPublishError keeps the outcome of the last publish for the status.
func (e *Engine) setPublishError(err error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.publishErr = ""
	if err != nil {
		e.log.Error("publishing service records", "err", err)
		e.publishErr = err.Error()
	}
}

// recordsBad reports whether a checked record is missing or wrong.
func (e *Engine) recordsBad() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, rs := range e.recordsState {
		if rs.State == "missing" || rs.State == "wrong" {
			return true
		}
	}
	return false
}
