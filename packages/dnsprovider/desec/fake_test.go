package desec

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// fakeDeSEC is a fake of deSEC's REST API for one domain, because deSEC is
// an outside service. It is written from deSEC's documentation at
// https://desec.readthedocs.io and keeps the RRsets in memory. It serves
// the domain's details with minimum_ttl, the RRset list with subname and
// type filters and cursor pagination (Link header), and the bulk PATCH
// that applies all changes or none. It checks Token authentication and
// can throttle requests with HTTP 429 and Retry-After.
type fakeDeSEC struct {
	t      *testing.T
	token  string
	domain string
	minTTL int

	mu       sync.Mutex
	rrsets   map[string]rrset // by "subname/TYPE"
	requests []string
	bodies   []string

	// pageSize is the page size of the cursor pagination, small to
	// exercise it (deSEC's is 500).
	pageSize int
	// throttle is the number of next requests that get HTTP 429.
	throttle int
}

func newFakeDeSEC(t *testing.T, token string) *fakeDeSEC {
	return &fakeDeSEC{t: t, token: token, domain: "example.dedyn.io", minTTL: 60, rrsets: map[string]rrset{}, pageSize: 2}
}

func (f *fakeDeSEC) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r.Method+" "+r.URL.RequestURI())

	if r.Header.Get("Authorization") != "Token "+f.token {
		f.writeJSON(w, http.StatusUnauthorized, map[string]string{"detail": "Invalid token."})
		return
	}
	if f.throttle > 0 {
		f.throttle--
		w.Header().Set("Retry-After", "1")
		f.writeJSON(w, http.StatusTooManyRequests, map[string]string{"detail": "Request was throttled. Expected available in 1 second."})
		return
	}

	domainPath := "/api/v1/domains/" + f.domain + "/"
	switch {
	case !strings.HasPrefix(r.URL.Path, domainPath):
		f.writeJSON(w, http.StatusNotFound, map[string]string{"detail": "Not found."})
	case r.Method == http.MethodGet && r.URL.Path == domainPath:
		f.writeJSON(w, http.StatusOK, map[string]any{"name": f.domain, "minimum_ttl": f.minTTL, "keys": []any{}})
	case r.Method == http.MethodGet && r.URL.Path == domainPath+"rrsets/":
		f.list(w, r)
	case r.Method == http.MethodPatch && r.URL.Path == domainPath+"rrsets/":
		f.bulkPatch(w, r)
	default:
		f.writeJSON(w, http.StatusNotFound, map[string]string{"detail": "Not found."})
	}
}

func (f *fakeDeSEC) list(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var keys []string
	for k, s := range f.rrsets {
		if q.Has("subname") && q.Get("subname") != s.Subname {
			continue
		}
		if q.Has("type") && q.Get("type") != s.Type {
			continue
		}
		keys = append(keys, k)
	}
	slices.Sort(keys)

	if !q.Has("cursor") && len(keys) > f.pageSize {
		w.Header().Set("Link", fmt.Sprintf(`<http://%s%s?cursor=>; rel="first"`, r.Host, r.URL.Path))
		f.writeJSON(w, http.StatusBadRequest, map[string]string{"detail": "Pagination required. You can query up to 2 items at a time (using the cursor parameter)."})
		return
	}
	start, _ := strconv.Atoi(q.Get("cursor"))
	end := len(keys)
	if q.Has("cursor") {
		end = min(start+f.pageSize, len(keys))
		if end < len(keys) {
			next := q
			next.Set("cursor", strconv.Itoa(end))
			w.Header().Set("Link", fmt.Sprintf(`<http://%s%s?cursor=>; rel="first", <http://%s%s?%s>; rel="next"`,
				r.Host, r.URL.Path, r.Host, r.URL.Path, next.Encode()))
		}
	}
	sets := []rrset{}
	for _, k := range keys[min(start, len(keys)):end] {
		sets = append(sets, f.rrsets[k])
	}
	f.writeJSON(w, http.StatusOK, sets)
}

// bulkPatch validates every RRset first and changes nothing when one is
// invalid, as deSEC does.
func (f *fakeDeSEC) bulkPatch(w http.ResponseWriter, r *http.Request) {
	var body strings.Builder
	var sets []rrset
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20)).Decode(&sets); err != nil {
		f.writeJSON(w, http.StatusBadRequest, map[string]string{"detail": err.Error()})
		return
	}
	raw, _ := json.Marshal(sets)
	body.Write(raw)
	f.bodies = append(f.bodies, body.String())

	for _, s := range sets {
		if msg := f.invalid(s); msg != "" {
			f.writeJSON(w, http.StatusBadRequest, []map[string][]string{{"records": {msg}}})
			return
		}
	}
	var changed []rrset
	for _, s := range sets {
		key := s.Subname + "/" + s.Type
		old, exists := f.rrsets[key]
		switch {
		case len(s.Records) == 0:
			delete(f.rrsets, key)
		case exists && s.TTL == 0:
			s.TTL = old.TTL
			fallthrough
		default:
			f.rrsets[key] = s
			changed = append(changed, s)
		}
	}
	f.writeJSON(w, http.StatusOK, changed)
}

func (f *fakeDeSEC) invalid(s rrset) string {
	_, exists := f.rrsets[s.Subname+"/"+s.Type]
	switch {
	case s.Type == "" || strings.ToUpper(s.Type) != s.Type:
		return "invalid type"
	case !exists && len(s.Records) > 0 && s.TTL == 0:
		return "ttl: This field is required."
	case s.TTL != 0 && s.TTL < f.minTTL:
		return fmt.Sprintf("ttl: Ensure this value is greater than or equal to %d.", f.minTTL)
	}
	for _, v := range s.Records {
		if s.Type == "TXT" && !strings.HasPrefix(v, `"`) {
			return "TXT records must be quoted"
		}
		if (s.Type == "MX" || s.Type == "CNAME" || s.Type == "SRV") && !strings.HasSuffix(v, ".") {
			return "Hostname must be fully qualified (end with a dot)"
		}
	}
	return ""
}

func (f *fakeDeSEC) writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		f.t.Errorf("fake deSEC: encoding the response: %v", err)
	}
}

func (f *fakeDeSEC) records(subname, rtype string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.rrsets[subname+"/"+rtype]
	if !ok {
		return nil
	}
	v := slices.Clone(s.Records)
	slices.Sort(v)
	return v
}

func (f *fakeDeSEC) count(prefix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.requests {
		if strings.HasPrefix(r, prefix) {
			n++
		}
	}
	return n
}
