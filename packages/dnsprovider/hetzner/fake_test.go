package hetzner

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeAPI is a fake of the Hetzner Cloud API's zone and RRset endpoints,
// which are a paid outside service. It is written from the API
// documentation at https://docs.hetzner.cloud/reference/cloud (zones, zone
// RRsets, zone RRset actions, zone actions, pagination, rate limiting and
// errors) and serves one zone from memory.
type fakeAPI struct {
	t     *testing.T
	token string

	mu       sync.Mutex
	zoneID   int64
	zoneName string
	zoneTTL  int
	rrsets   map[string]*fakeRRSet // by "name/TYPE"
	actions  map[int64]*fakeAction
	nextID   int64
	requests []string // "METHOD path?query"
	bodies   []string // bodies of POST requests

	// perPage is the maximum page size, small to exercise pagination.
	perPage int
	// reject429 is the number of next requests that get HTTP 429.
	reject429 int
	// runningPolls is the number of polls for which an action stays
	// running.
	runningPolls int
}

type fakeRRSet struct {
	Name    string       `json:"name"`
	Type    string       `json:"type"`
	TTL     *int         `json:"ttl"`
	Records []fakeRecord `json:"records"`
}

type fakeRecord struct {
	Value   string `json:"value"`
	Comment string `json:"comment,omitempty"`
}

type fakeAction struct {
	ID      int64  `json:"id"`
	Command string `json:"command"`
	Status  string `json:"status"`
	polls   int
}

func newFakeAPI(t *testing.T, token string) *fakeAPI {
	return &fakeAPI{
		t: t, token: token,
		zoneID: 4711, zoneName: "example.test", zoneTTL: 3600,
		rrsets:  map[string]*fakeRRSet{},
		actions: map[int64]*fakeAction{},
		nextID:  1000, perPage: 2,
	}
}

func (f *fakeAPI) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.requests = append(f.requests, r.Method+" "+r.URL.RequestURI())

	w.Header().Set("RateLimit-Limit", "3600")
	w.Header().Set("RateLimit-Remaining", "3599")
	w.Header().Set("RateLimit-Reset", strconv.FormatInt(time.Now().Unix()+1, 10))
	if r.Header.Get("Authorization") != "Bearer "+f.token {
		f.error(w, http.StatusUnauthorized, "unauthorized", "unable to authenticate")
		return
	}
	if f.reject429 > 0 {
		f.reject429--
		w.Header().Set("RateLimit-Remaining", "0")
		f.error(w, http.StatusTooManyRequests, "rate_limit_exceeded", "limit of 3600 requests per hour reached")
		return
	}

	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case r.Method == http.MethodGet && len(parts) == 3 && parts[0] == "zones" && parts[1] == "actions":
		f.getAction(w, parts[2])
	case r.Method == http.MethodGet && len(parts) == 1 && parts[0] == "zones":
		f.listZones(w, r)
	case len(parts) < 2 || parts[0] != "zones":
		f.error(w, http.StatusNotFound, "not_found", "not found")
	case parts[1] != f.zoneName && parts[1] != strconv.FormatInt(f.zoneID, 10):
		f.error(w, http.StatusNotFound, "not_found", "zone not found")
	case r.Method == http.MethodGet && len(parts) == 2:
		f.writeJSON(w, http.StatusOK, map[string]any{"zone": f.zone()})
	case r.Method == http.MethodGet && len(parts) == 3 && parts[2] == "rrsets":
		f.listRRSets(w, r)
	case r.Method == http.MethodPost && len(parts) == 3 && parts[2] == "rrsets":
		f.createRRSet(w, r)
	case r.Method == http.MethodGet && len(parts) == 5 && parts[2] == "rrsets":
		f.getRRSet(w, parts[3], parts[4])
	case r.Method == http.MethodPost && len(parts) == 7 && parts[2] == "rrsets" && parts[5] == "actions":
		f.rrsetAction(w, r, parts[3], parts[4], parts[6])
	default:
		f.error(w, http.StatusNotFound, "not_found", "no such endpoint")
	}
}

// listZones serves one page for each zone: the fake's own zone and
// "other.test", filtered by the name query parameter.
func (f *fakeAPI) listZones(w http.ResponseWriter, r *http.Request) {
	zones := []map[string]any{f.zone(), {"id": 4712, "name": "other.test", "ttl": 3600, "mode": "primary"}}
	q := r.URL.Query()
	if name := q.Get("name"); name != "" {
		zones = slices.DeleteFunc(zones, func(z map[string]any) bool { return z["name"] != name })
	}
	page, _ := strconv.Atoi(q.Get("page"))
	page = max(page, 1)
	pagination := map[string]any{"page": page, "per_page": 1, "last_page": len(zones), "total_entries": len(zones), "previous_page": nil, "next_page": nil}
	if page < len(zones) {
		pagination["next_page"] = page + 1
	}
	var list []map[string]any
	if page <= len(zones) {
		list = zones[page-1 : page]
	}
	f.writeJSON(w, http.StatusOK, map[string]any{"zones": list, "meta": map[string]any{"pagination": pagination}})
}

func (f *fakeAPI) zone() map[string]any {
	return map[string]any{
		"id": f.zoneID, "name": f.zoneName, "ttl": f.zoneTTL, "mode": "primary",
		"status": "ok", "created": "2026-01-01T00:00:00Z", "labels": map[string]string{},
		"protection":                map[string]bool{"delete": false},
		"authoritative_nameservers": map[string]any{"assigned": []string{"hydrogen.ns.hetzner.com."}},
		"record_count":              len(f.rrsets),
	}
}

func (f *fakeAPI) rrsetJSON(s *fakeRRSet) map[string]any {
	return map[string]any{
		"id": s.Name + "/" + s.Type, "name": s.Name, "type": s.Type, "ttl": s.TTL,
		"labels": map[string]string{}, "protection": map[string]bool{"change": false},
		"records": s.Records, "zone": f.zoneID,
	}
}

func (f *fakeAPI) listRRSets(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	var keys []string
	for k, s := range f.rrsets {
		if (q.Get("name") == "" || q.Get("name") == s.Name) && (len(q["type"]) == 0 || slices.Contains(q["type"], s.Type)) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)

	page, _ := strconv.Atoi(q.Get("page"))
	page = max(page, 1)
	perPage, _ := strconv.Atoi(q.Get("per_page"))
	if perPage <= 0 || perPage > f.perPage {
		perPage = f.perPage
	}
	lastPage := max((len(keys)+perPage-1)/perPage, 1)
	var sets []map[string]any
	for _, k := range keys[min((page-1)*perPage, len(keys)):min(page*perPage, len(keys))] {
		sets = append(sets, f.rrsetJSON(f.rrsets[k]))
	}
	pagination := map[string]any{
		"page": page, "per_page": perPage, "last_page": lastPage, "total_entries": len(keys),
		"previous_page": nil, "next_page": nil,
	}
	if page > 1 {
		pagination["previous_page"] = page - 1
	}
	if page < lastPage {
		pagination["next_page"] = page + 1
	}
	f.writeJSON(w, http.StatusOK, map[string]any{"rrsets": sets, "meta": map[string]any{"pagination": pagination}})
}

func (f *fakeAPI) getRRSet(w http.ResponseWriter, name, rtype string) {
	s, ok := f.rrsets[name+"/"+rtype]
	if !ok {
		f.error(w, http.StatusNotFound, "not_found", "rrset not found")
		return
	}
	f.writeJSON(w, http.StatusOK, map[string]any{"rrset": f.rrsetJSON(s)})
}

func (f *fakeAPI) createRRSet(w http.ResponseWriter, r *http.Request) {
	var req fakeRRSet
	if !f.decode(w, r, &req) {
		return
	}
	if _, exists := f.rrsets[req.Name+"/"+req.Type]; exists {
		f.error(w, http.StatusConflict, "uniqueness_error", "rrset already exists")
		return
	}
	if !f.validRecords(w, req.Type, req.Records) {
		return
	}
	s := &fakeRRSet{Name: req.Name, Type: req.Type, TTL: req.TTL, Records: req.Records}
	f.rrsets[req.Name+"/"+req.Type] = s
	f.writeJSON(w, http.StatusCreated, map[string]any{"rrset": f.rrsetJSON(s), "action": f.newAction("create_rrset")})
}

func (f *fakeAPI) rrsetAction(w http.ResponseWriter, r *http.Request, name, rtype, command string) {
	var req struct {
		Records []fakeRecord `json:"records"`
		TTL     *int         `json:"ttl"`
	}
	if !f.decode(w, r, &req) {
		return
	}
	key := name + "/" + rtype
	s, exists := f.rrsets[key]
	if !exists && command != "add_records" {
		f.error(w, http.StatusNotFound, "not_found", "rrset not found")
		return
	}
	if command != "change_ttl" && !f.validRecords(w, rtype, req.Records) {
		return
	}

	switch command {
	case "add_records":
		// add_records creates a missing RRset with the given TTL.
		if !exists {
			s = &fakeRRSet{Name: name, Type: rtype, TTL: req.TTL}
			f.rrsets[key] = s
		}
		for _, rec := range req.Records {
			if !slices.ContainsFunc(s.Records, func(x fakeRecord) bool { return x.Value == rec.Value }) {
				s.Records = append(s.Records, rec)
			}
		}
	case "set_records":
		s.Records = req.Records
	case "remove_records":
		s.Records = slices.DeleteFunc(s.Records, func(x fakeRecord) bool {
			return slices.ContainsFunc(req.Records, func(rec fakeRecord) bool { return rec.Value == x.Value })
		})
		if len(s.Records) == 0 {
			delete(f.rrsets, key)
		}
	case "change_ttl":
		s.TTL = req.TTL
	default:
		f.error(w, http.StatusNotFound, "not_found", "no such action")
		return
	}
	f.writeJSON(w, http.StatusCreated, map[string]any{"action": f.newAction(command + "_rrset")})
}

// validRecords rejects TXT values that are not quoted, as the API does.
func (f *fakeAPI) validRecords(w http.ResponseWriter, rtype string, records []fakeRecord) bool {
	for _, rec := range records {
		if rtype == "TXT" && !strings.HasPrefix(rec.Value, `"`) {
			f.error(w, http.StatusUnprocessableEntity, "invalid_input", "TXT values must be quoted")
			return false
		}
		if rec.Value == "" {
			f.error(w, http.StatusUnprocessableEntity, "invalid_input", "empty record value")
			return false
		}
	}
	return true
}

func (f *fakeAPI) newAction(command string) map[string]any {
	f.nextID++
	a := &fakeAction{ID: f.nextID, Command: command, Status: "running"}
	f.actions[a.ID] = a
	return f.actionJSON(a)
}

func (f *fakeAPI) actionJSON(a *fakeAction) map[string]any {
	return map[string]any{
		"id": a.ID, "command": a.Command, "status": a.Status, "progress": 0,
		"started": "2026-01-01T00:00:00Z", "finished": nil, "error": nil,
		"resources": []map[string]any{{"id": f.zoneID, "type": "zone"}},
	}
}

func (f *fakeAPI) getAction(w http.ResponseWriter, idText string) {
	id, _ := strconv.ParseInt(idText, 10, 64)
	a, ok := f.actions[id]
	if !ok {
		f.error(w, http.StatusNotFound, "not_found", "action not found")
		return
	}
	a.polls++
	if a.polls > f.runningPolls {
		a.Status = "success"
	}
	f.writeJSON(w, http.StatusOK, map[string]any{"action": f.actionJSON(a)})
}

func (f *fakeAPI) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	var body strings.Builder
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		f.error(w, http.StatusBadRequest, "json_error", err.Error())
		return false
	}
	body.Write(raw)
	f.bodies = append(f.bodies, body.String())
	if err := json.Unmarshal(raw, v); err != nil {
		f.error(w, http.StatusBadRequest, "json_error", err.Error())
		return false
	}
	return true
}

func (f *fakeAPI) error(w http.ResponseWriter, status int, code, message string) {
	f.writeJSON(w, status, map[string]any{"error": map[string]any{"code": code, "message": message, "details": map[string]any{}}})
}

func (f *fakeAPI) writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		f.t.Errorf("fake API: encoding the response: %v", err)
	}
}

// count returns the number of requests whose "METHOD path" starts with
// prefix.
func (f *fakeAPI) count(prefix string) int {
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

func (f *fakeAPI) values(name, rtype string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.rrsets[name+"/"+rtype]
	if !ok {
		return nil
	}
	var v []string
	for _, rec := range s.Records {
		v = append(v, rec.Value)
	}
	slices.Sort(v)
	return v
}

func (f *fakeAPI) ttl(name, rtype string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	s, ok := f.rrsets[name+"/"+rtype]
	if !ok || s.TTL == nil {
		return "none"
	}
	return fmt.Sprint(*s.TTL)
}
