package certs

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/heimwolke/heimwolke/packages/tlsstore"
)

// backoffFile keeps the retry state of every certificate across restarts,
// so that an agent that gokrazy restarts after a crash does not start a new
// order at every start and run into the CA's rate limits.
const backoffFile = "backoff.json"

// backoffState is the retry state of one certificate after failures.
type backoffState struct {
	// Config is configFingerprint of the run that failed. A run with
	// another configuration, such as a corrected DNS key, starts at once.
	Config    string    `json:"config"`
	Failures  int       `json:"failures"`
	RetryAt   time.Time `json:"retry_at"`
	LastError string    `json:"last_error"`
}

// configFingerprint returns a SHA-256 hash of everything in cfg that decides
// whether an order can succeed, the DNS provider's settings included. Only
// the hash is stored, never the provider's secrets.
func configFingerprint(cfg *Config) string {
	provider, _ := json.Marshal(cfg.DNSProvider)
	data, _ := json.Marshal([]any{
		cfg.Names, cfg.DirectoryURL, cfg.Email, cfg.Profile, cfg.Challenges, cfg.DNSResolvers,
		fmt.Sprintf("%T", cfg.DNSProvider), provider, cfg.LocalNames, cfg.LocalIPs,
	})
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

func (m *Manager) backoffPath() (string, error) {
	dir, err := m.cfg.Store.PrivateDir("manager")
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, backoffFile), nil
}

// loadBackoff restores the retry state saved by an earlier run.
func (m *Manager) loadBackoff() {
	path, err := m.backoffPath()
	if err != nil {
		m.log.Warn("reading the retry state failed", "err", err)
		return
	}
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	states := make(map[string]backoffState)
	if err == nil {
		err = json.Unmarshal(data, &states)
	}
	if err != nil {
		m.log.Warn("reading the retry state failed, retrying at once", "path", path, "err", err)
		return
	}

	m.mu.Lock()
	defer m.mu.Unlock()
	for _, s := range m.slots {
		state, ok := states[s.certName]
		if !ok || state.Config != m.fingerprint {
			continue
		}
		s.failures = state.Failures
		s.lastError = state.LastError
		s.nextAttempt = state.RetryAt
		s.wakeAt = state.RetryAt
		m.log.Info("continuing backoff from the last run", "certificate", s.certName, "failures", state.Failures, "retry_at", state.RetryAt)
	}
}

// saveBackoff stores the retry state of every slot that is failing.
func (m *Manager) saveBackoff() {
	m.mu.Lock()
	states := make(map[string]backoffState)
	for _, s := range m.slots {
		if s.failures > 0 {
			states[s.certName] = backoffState{Config: m.fingerprint, Failures: s.failures, RetryAt: s.wakeAt, LastError: s.lastError}
		}
	}
	m.mu.Unlock()

	err := m.writeBackoff(states)
	if err != nil {
		m.log.Warn("saving the retry state failed", "err", err)
	}
}

func (m *Manager) writeBackoff(states map[string]backoffState) error {
	path, err := m.backoffPath()
	if err != nil {
		return err
	}
	data, err := json.MarshalIndent(states, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding retry state: %w", err)
	}
	return tlsstore.WriteFile(path, data, 0o600)
}
