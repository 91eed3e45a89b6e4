package certs

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/caddyserver/certmagic"
	"github.com/mholt/acmez/v3"
	"github.com/mholt/acmez/v3/acme"

	"github.com/heimwolke/heimwolke/packages/tlsstore"
	"github.com/heimwolke/heimwolke/packages/version"
)

const (
	// ariRecheckDefault is how long a renewal window is trusted when the CA
	// sends no Retry-After with it.
	ariRecheckDefault = 6 * time.Hour
	// ariFailureWait is how long the two-thirds schedule is used after the
	// renewal information could not be fetched.
	ariFailureWait = time.Hour
)

// acmeIssuer obtains certificates from an ACME CA with acmez.
//
// It uses acmez directly and not certmagic.Config, because certmagic solves
// HTTP-01 and TLS-ALPN-01 only with listeners of its own process or through
// its own storage format. Here heimwolke owns ports 80 and 443 and serves
// the challenges from tlsstore files. certmagic's DNS01Solver does the DNS-01
// work (zone lookup, propagation check, cleanup) through a libdns provider.
type acmeIssuer struct {
	cfg       *Config
	log       *slog.Logger
	dir       string // private folder for the account key and state
	transport *retryAfterTransport
	client    *acme.Client
	dnsSolver *certmagic.DNS01Solver // nil without a DNS provider

	mu             sync.Mutex // guards the fields below
	account        *acme.Account
	state          acmeState
	ari            acme.RenewalInfo // for the certificate with serial ariSerial
	ariSerial      string
	ariFailedUntil time.Time
}

// acmeState is stored in the issuer's folder as state.json.
type acmeState struct {
	// Directory is the CA that issued the stored certificate.
	Directory string `json:"directory"`
	// Challenges maps each name to the challenge type that validated it.
	Challenges map[string]string `json:"challenges"`
}

func newACMEIssuer(cfg *Config, log *slog.Logger) (*acmeIssuer, error) {
	dir, err := cfg.Store.PrivateDir("acme")
	if err != nil {
		return nil, fmt.Errorf("preparing the ACME folder: %w", err)
	}
	base := http.DefaultTransport.(*http.Transport).Clone()
	base.TLSClientConfig = &tls.Config{RootCAs: cfg.TrustedRoots, MinVersion: tls.VersionTLS12}
	transport := &retryAfterTransport{base: base}

	a := &acmeIssuer{
		cfg:       cfg,
		log:       log,
		dir:       dir,
		transport: transport,
		client: &acme.Client{
			Directory:  cfg.DirectoryURL,
			HTTPClient: &http.Client{Transport: transport, Timeout: time.Minute},
			UserAgent:  "heimwolke-agent/" + version.Version,
			Logger:     log.With("acme_directory", cfg.DirectoryURL),
		},
	}
	if cfg.DNSProvider != nil {
		a.dnsSolver = &certmagic.DNS01Solver{DNSManager: certmagic.DNSManager{
			DNSProvider:        cfg.DNSProvider,
			Resolvers:          cfg.DNSResolvers,
			PropagationTimeout: cfg.DNSPropagationTimeout,
		}}
	}
	if err := a.loadState(); err != nil {
		log.Warn("reading the ACME state failed, starting without it", "err", err)
	}
	return a, nil
}

// obtain runs one ACME order per challenge type until one succeeds. With a
// DNS provider that is DNS-01 alone, otherwise each type of
// Config.Challenges in turn, so that a box whose port 80 is blocked still
// gets a certificate through TLS-ALPN-01 on port 443.
func (a *acmeIssuer) obtain(ctx context.Context, names []string, current *x509.Certificate) (issued, error) {
	account, err := a.ensureAccount(ctx)
	if err != nil {
		return issued{}, err
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return issued{}, fmt.Errorf("generating certificate key: %w", err)
	}
	csr, err := acmez.NewCSR(key, names)
	if err != nil {
		return issued{}, fmt.Errorf("making certificate request for %v: %w", names, err)
	}
	params, err := acmez.OrderParametersFromCSR(account, csr)
	if err != nil {
		return issued{}, fmt.Errorf("making order for %v: %w", names, err)
	}
	params.Profile = a.cfg.Profile
	// RFC 9773 section 5: an order that replaces a certificate names it in
	// "replaces". Let's Encrypt exempts such renewals from some rate
	// limits. Only a certificate from this CA can be named.
	if current != nil && len(current.AuthorityKeyId) > 0 && a.fromThisCA() && a.supportsARI(ctx) {
		params.Replaces = current
	}

	var failures []string
	for _, plan := range a.plans() {
		recorder := &challengeRecorder{used: make(map[string]string)}
		client := &acmez.Client{Client: a.client, ChallengeSolvers: map[string]acmez.Solver{
			plan: recorder.wrap(a.solver(plan)),
		}}
		chains, err := client.ObtainCertificate(ctx, params)
		if err != nil && params.Replaces != nil && isProblem(err, acme.ProblemTypeMalformed) {
			a.log.Warn("acme order naming the replaced certificate failed, ordering without it", "err", err)
			params.Replaces = nil
			chains, err = client.ObtainCertificate(ctx, params)
		}
		if err == nil {
			return a.finish(names, chains, key, recorder)
		}
		a.log.Warn("acme order failed", "challenge", plan, "names", names, "err", err)
		failures = append(failures, fmt.Sprintf("with %s: %v", plan, err))
		if !tryOtherChallenge(ctx, err) {
			break
		}
	}
	return issued{}, fmt.Errorf("obtaining certificate for %s from %s failed %s",
		strings.Join(names, ", "), a.cfg.DirectoryURL, strings.Join(failures, "; then "))
}

func (a *acmeIssuer) plans() []string {
	if a.dnsSolver != nil {
		return []string{ChallengeDNS01}
	}
	return a.cfg.Challenges
}

func (a *acmeIssuer) solver(challenge string) acmez.Solver {
	switch challenge {
	case ChallengeDNS01:
		return a.dnsSolver
	case ChallengeTLSALPN01:
		return alpnSolver{store: a.cfg.Store}
	default:
		return httpSolver{store: a.cfg.Store}
	}
}

// tryOtherChallenge reports whether an order that failed with err may
// succeed with another challenge type. It may not when the context ended,
// the CA could not be reached, or the CA rejected the order itself, as for
// a rate limit or a name it does not issue for.
func tryOtherChallenge(ctx context.Context, err error) bool {
	if ctx.Err() != nil {
		return false
	}
	var problem acme.Problem
	if !errors.As(err, &problem) {
		return false
	}
	switch problem.Type {
	case acme.ProblemTypeRateLimited, acme.ProblemTypeRejectedIdentifier, acme.ProblemTypeUnsupportedIdentifier,
		acme.ProblemTypeAccountDoesNotExist, acme.ProblemTypeMalformed:
		return false
	}
	return true
}

func isProblem(err error, problemType string) bool {
	var problem acme.Problem
	return errors.As(err, &problem) && problem.Type == problemType
}

// finish encodes the first chain that the CA offers and the key, and
// stores which challenge validated each name.
func (a *acmeIssuer) finish(names []string, chains []acme.Certificate, key *ecdsa.PrivateKey, recorder *challengeRecorder) (issued, error) {
	if len(chains) == 0 {
		return issued{}, fmt.Errorf("the CA %s returned no certificate chain for %v", a.cfg.DirectoryURL, names)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return issued{}, fmt.Errorf("encoding certificate key: %w", err)
	}

	challenges := make(map[string]string)
	for _, name := range names {
		// An authorization that the CA still held as valid needed no
		// challenge, so such a name keeps the type recorded before.
		if challenge := recorder.lookup(name); challenge != "" {
			challenges[name] = challenge
		}
	}
	a.mu.Lock()
	a.state.Directory = a.cfg.DirectoryURL
	if a.state.Challenges == nil {
		a.state.Challenges = make(map[string]string)
	}
	for name, challenge := range challenges {
		a.state.Challenges[name] = challenge
	}
	a.mu.Unlock()
	if err := a.saveState(); err != nil {
		a.log.Warn("saving the ACME state failed", "err", err)
	}

	return issued{
		chainPEM:   chains[0].ChainPEM,
		keyPEM:     pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		challenges: challenges,
	}, nil
}

// ensureAccount loads or makes the account key for the directory and
// registers it with the CA once per process. Registering an existing key
// returns its account (RFC 8555 section 7.3.1).
func (a *acmeIssuer) ensureAccount(ctx context.Context) (acme.Account, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.account != nil {
		return *a.account, nil
	}

	key, err := a.accountKey()
	if err != nil {
		return acme.Account{}, err
	}
	account := acme.Account{TermsOfServiceAgreed: true, PrivateKey: key}
	if a.cfg.Email != "" {
		account.Contact = []string{"mailto:" + a.cfg.Email}
	}
	// NOTE: a changed Email is not sent to the CA for an existing account.
	account, err = a.client.NewAccount(ctx, account)
	if err != nil {
		return acme.Account{}, fmt.Errorf("registering ACME account with %s: %w", a.cfg.DirectoryURL, err)
	}
	a.log.Info("acme account ready", "account", account.Location)
	a.account = &account
	return account, nil
}

// accountKey loads the account key of the directory, or makes and stores a
// new ECDSA P-256 key. Each directory URL gets its own key file, so a switch
// between staging and production keeps both accounts.
func (a *acmeIssuer) accountKey() (*ecdsa.PrivateKey, error) {
	sum := sha256.Sum256([]byte(a.cfg.DirectoryURL))
	path := filepath.Join(a.dir, "account-"+hex.EncodeToString(sum[:6])+".pem")

	data, err := os.ReadFile(path)
	if err == nil {
		block, _ := pem.Decode(data)
		if block == nil {
			return nil, fmt.Errorf("reading ACME account key %s: no PEM block; remove the file to register a new account", path)
		}
		key, err := x509.ParseECPrivateKey(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("parsing ACME account key %s: %w; remove the file to register a new account", path, err)
		}
		return key, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("reading ACME account key: %w", err)
	}

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("generating ACME account key: %w", err)
	}
	der, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding ACME account key: %w", err)
	}
	if err := tlsstore.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		return nil, fmt.Errorf("storing ACME account key: %w", err)
	}
	return key, nil
}

func (a *acmeIssuer) supportsARI(ctx context.Context) bool {
	dir, err := a.client.GetDirectory(ctx)
	return err == nil && dir.RenewalInfo != ""
}

// schedule follows the CA's renewal information (RFC 9773 section 4.2):
// renew at the time acmez picked at random within the suggested window, and
// ask again after the Retry-After the CA sent. Without renewal information,
// or while it cannot be fetched, the certificate is renewed after two thirds
// of its lifetime.
func (a *acmeIssuer) schedule(ctx context.Context, cert *x509.Certificate) (renewAt, recheckAt time.Time) {
	fallback := twoThirds(cert)
	info, ok := a.renewalInfo(ctx, cert)
	if !ok {
		return fallback, time.Time{}
	}

	renewAt = info.SelectedTime
	if renewAt.IsZero() || renewAt.After(cert.NotAfter) {
		renewAt = fallback
	}
	recheckAt = time.Now().Add(ariRecheckDefault)
	if info.RetryAfter != nil {
		recheckAt = *info.RetryAfter
	}
	return renewAt, recheckAt
}

// renewalInfo returns the CA's renewal information for cert, fetched again
// only when the last answer's Retry-After has passed, so that the time
// picked within the window stays put.
func (a *acmeIssuer) renewalInfo(ctx context.Context, cert *x509.Certificate) (acme.RenewalInfo, bool) {
	serial := cert.SerialNumber.Text(16)
	a.mu.Lock()
	cached, cachedSerial, failedUntil := a.ari, a.ariSerial, a.ariFailedUntil
	a.mu.Unlock()

	if cachedSerial == serial && cached.HasWindow() && !cached.NeedsRefresh() {
		return cached, true
	}
	if cachedSerial == serial && time.Now().Before(failedUntil) {
		return acme.RenewalInfo{}, false
	}

	info, err := a.client.GetRenewalInfo(ctx, cert)
	a.mu.Lock()
	defer a.mu.Unlock()
	a.ariSerial = serial
	if err != nil {
		a.ari = acme.RenewalInfo{}
		a.ariFailedUntil = time.Now().Add(ariFailureWait)
		if !errors.Is(err, acme.ErrUnsupported) {
			a.log.Warn("fetching renewal information failed, renewing after two thirds of the lifetime", "serial", serial, "err", err)
		}
		return acme.RenewalInfo{}, false
	}
	// Keep the time picked before while the window stays the same.
	if cachedSerial == serial && cached.SameWindow(info) && !cached.SelectedTime.IsZero() {
		info.SelectedTime = cached.SelectedTime
	}
	a.ari = info
	return info, true
}

// accepts rejects a certificate from another CA directory than the
// configured one, for example a staging certificate after a switch to
// production.
func (a *acmeIssuer) accepts(*x509.Certificate) bool {
	return a.fromThisCA()
}

// fromThisCA reports whether the stored certificate came from the
// configured directory, assuming so when that was not recorded.
func (a *acmeIssuer) fromThisCA() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.state.Directory == "" || a.state.Directory == a.cfg.DirectoryURL
}

func (a *acmeIssuer) lastChallenges() map[string]string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make(map[string]string, len(a.state.Challenges))
	for name, challenge := range a.state.Challenges {
		out[name] = challenge
	}
	return out
}

func (a *acmeIssuer) takeRetryAfter() time.Time { return a.transport.take() }

func (a *acmeIssuer) statePath() string { return filepath.Join(a.dir, "state.json") }

func (a *acmeIssuer) loadState() error {
	data, err := os.ReadFile(a.statePath())
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	return json.Unmarshal(data, &a.state)
}

func (a *acmeIssuer) saveState() error {
	a.mu.Lock()
	data, err := json.MarshalIndent(a.state, "", "  ")
	a.mu.Unlock()
	if err != nil {
		return err
	}
	return tlsstore.WriteFile(a.statePath(), data, 0o600)
}
