package webui

import (
	"slices"
	"sync"
	"time"

	"github.com/heimwolke/heimwolke/packages/control"
	"github.com/heimwolke/heimwolke/packages/i18n"
)

const (
	// draftIdle is how long a wizard draft lives after its last change.
	draftIdle = 24 * time.Hour
	// maxDrafts caps the drafts in memory: every LAN device that opens the
	// wizard starts one. When full, the oldest is dropped.
	maxDrafts = 64
	// maxMembers caps the further members that the wizard takes.
	maxMembers = 50
)

// draft is the wizard's input so far.
type draft struct {
	// CodeOK records that this visitor entered the right setup code.
	CodeOK bool

	Lang       string
	LangChosen bool // the language step was sent once
	Owner      person
	Members    []person

	// NewMember is the members step's form as it was last sent and
	// rejected, so that a reload shows it again.
	NewMember person

	Domain   domainDraft
	Router   routerDraft
	Mail     mailDraft
	Services control.ServiceSettings
	Updates  updatesDraft

	// Saved records the steps whose form was last sent without errors.
	Saved [stepCount]bool

	// Apply is the outcome of the last press of the summary's button,
	// the zero value before the first.
	Apply applyRun

	updated time.Time
}

// newDraft returns a draft in lang with the defaults of the later steps:
// every service on, port mapping allowed, the stable channel at 3 a.m.
func newDraft(lang string) draft {
	return draft{
		Lang:     lang,
		Domain:   domainDraft{TSIGAlgorithm: control.TSIGHMACSHA256},
		Router:   routerDraft{PortMapping: true},
		Mail:     mailDraft{Port: "465", TLS: control.SmarthostImplicitTLS},
		Services: defaultServices(),
		Updates:  updatesDraft{Channel: "stable", Hour: 3},
	}
}

// person is an account that the wizard will create.
type person struct {
	// Name is the login name, normalized once it is valid and as typed
	// before, so that a rejected form shows what was typed.
	Name        string
	DisplayName string
	Language    string

	// password is kept in memory only, never written to disk, because the
	// accounts package takes a plaintext password to hash.
	password string
}

func (p person) HasPassword() bool { return p.password != "" }

// ownerReady reports whether the owner step has everything apply needs.
func (d *draft) ownerReady() bool {
	return loginNameProblem(d.Owner.Name) == "" && d.Owner.password != ""
}

// draftStore keeps the wizard drafts in memory, keyed by visitor cookie.
// A restart of heimwolke loses them.
//
// NOTE: drafts are not written to the database because they contain
// plaintext passwords, API tokens and keys until apply. A restart during
// setup sends the user back to the first step.
type draftStore struct {
	now func() time.Time

	mu     sync.Mutex
	drafts map[string]*draft
}

func newDraftStore(now func() time.Time) *draftStore {
	return &draftStore{now: now, drafts: map[string]*draft{}}
}

// get returns a copy of the draft of visitor, or a new draft in the
// language that acceptLanguage prefers.
func (s *draftStore) get(visitor, acceptLanguage string) draft {
	s.mu.Lock()
	defer s.mu.Unlock()

	d, ok := s.drafts[visitor]
	if !ok || s.now().Sub(d.updated) > draftIdle {
		return newDraft(i18n.Negotiate("", acceptLanguage))
	}
	c := *d
	c.Members = slices.Clone(d.Members)
	c.Apply.Issues = slices.Clone(d.Apply.Issues)
	return c
}

// language returns the language of visitor's draft, or the one that
// acceptLanguage prefers.
func (s *draftStore) language(visitor, acceptLanguage string) string {
	return s.get(visitor, acceptLanguage).Lang
}

// put stores d as visitor's draft.
func (s *draftStore) put(visitor string, d draft) {
	s.mu.Lock()
	defer s.mu.Unlock()

	now := s.now()
	d.updated = now
	if _, ok := s.drafts[visitor]; !ok {
		s.makeRoom(now)
	}
	s.drafts[visitor] = &d
}

// makeRoom drops expired drafts and, if still full, the oldest.
func (s *draftStore) makeRoom(now time.Time) {
	for k, d := range s.drafts {
		if now.Sub(d.updated) > draftIdle {
			delete(s.drafts, k)
		}
	}
	for len(s.drafts) >= maxDrafts {
		var oldest string
		for k, d := range s.drafts {
			if oldest == "" || d.updated.Before(s.drafts[oldest].updated) {
				oldest = k
			}
		}
		delete(s.drafts, oldest)
	}
}

// drop deletes every draft: after the setup none of them can be applied.
func (s *draftStore) drop() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.drafts)
}
