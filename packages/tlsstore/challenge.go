package tlsstore

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

const (
	httpChallengeDir = "http-01"     // challenges/http-01/TOKEN contains the key authorization
	alpnChallengeDir = "tls-alpn-01" // challenges/tls-alpn-01/NAME.pem contains certificate and key

	// HTTPChallengePrefix is the URL path under which HTTP-01 validation
	// requests ask for a token (RFC 8555 section 8.3).
	HTTPChallengePrefix = "/.well-known/acme-challenge/"
)

// errNoChallenge is returned to a TLS-ALPN-01 request without a pending
// challenge, so the handshake fails instead of showing a normal certificate.
var errNoChallenge = errors.New("no pending tls-alpn-01 challenge")

// validToken matches ACME tokens, which are base64url without padding
// (RFC 8555 section 8.1), so a token can never name a path outside the store.
var validToken = regexp.MustCompile(`^[A-Za-z0-9_-]{1,256}$`)

// validHost matches a DNS name as ACME identifiers spell it: lowercase
// labels of letters, digits and hyphens, no wildcard.
var validHost = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$`)

// PutHTTPChallenge stores the key authorization that heimwolke returns for
// an HTTP-01 validation request for token.
func (s *Store) PutHTTPChallenge(token, keyAuthorization string) error {
	path, err := s.httpChallengePath(token)
	if err != nil {
		return err
	}
	if err := WriteFile(path, []byte(keyAuthorization), 0o600); err != nil {
		return fmt.Errorf("storing http-01 challenge: %w", err)
	}
	return nil
}

// DeleteHTTPChallenge removes the HTTP-01 challenge for token; a missing one
// is not an error.
func (s *Store) DeleteHTTPChallenge(token string) error {
	path, err := s.httpChallengePath(token)
	if err != nil {
		return err
	}
	return removeFile(path)
}

func (s *Store) httpChallengePath(token string) (string, error) {
	if !validToken.MatchString(token) {
		return "", fmt.Errorf("invalid ACME token %q: expected base64url characters", token)
	}
	return filepath.Join(s.dir, challengesDir, httpChallengeDir, token), nil
}

// HTTPChallengeHandler returns a handler that serves HTTP-01 validation
// requests, GET or HEAD under /.well-known/acme-challenge/, from the store
// and passes every other request to next. An unknown token gets 404 Not
// Found.
func (s *Store) HTTPChallengeHandler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		token, ok := strings.CutPrefix(r.URL.Path, HTTPChallengePrefix)
		if !ok || (r.Method != http.MethodGet && r.Method != http.MethodHead) {
			next.ServeHTTP(w, r)
			return
		}
		s.serveHTTPChallenge(w, r, token)
	})
}

func (s *Store) serveHTTPChallenge(w http.ResponseWriter, r *http.Request, token string) {
	path, err := s.httpChallengePath(token)
	if err != nil {
		http.NotFound(w, r)
		return
	}
	keyAuth, err := os.ReadFile(path)
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			slog.Warn("tls store: reading http-01 challenge failed", "token", token, "err", err)
		}
		http.NotFound(w, r)
		return
	}

	slog.Info("tls store: serving http-01 challenge", "token", token, "host", r.Host, "remote_addr", r.RemoteAddr)
	// RFC 8555 section 8.3 shows the key authorization as the whole body,
	// with Content-Type application/octet-stream.
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Write(keyAuth)
}

// PutTLSALPNChallenge stores the self-signed challenge certificate with the
// acmeIdentifier extension (RFC 8737 section 3) that heimwolke presents to a
// TLS-ALPN-01 validation request for the DNS name identifier.
func (s *Store) PutTLSALPNChallenge(identifier string, cert *tls.Certificate) error {
	path, err := s.alpnChallengePath(identifier)
	if err != nil {
		return err
	}
	data, err := encodePair(cert)
	if err != nil {
		return fmt.Errorf("storing tls-alpn-01 challenge for %s: %w", identifier, err)
	}
	if err := WriteFile(path, data, 0o600); err != nil {
		return fmt.Errorf("storing tls-alpn-01 challenge for %s: %w", identifier, err)
	}
	return nil
}

// DeleteTLSALPNChallenge removes the TLS-ALPN-01 challenge certificate for
// identifier; a missing one is not an error.
func (s *Store) DeleteTLSALPNChallenge(identifier string) error {
	path, err := s.alpnChallengePath(identifier)
	if err != nil {
		return err
	}
	return removeFile(path)
}

func (s *Store) alpnChallengePath(identifier string) (string, error) {
	identifier = normalizeHost(identifier)
	if len(identifier) > 253 || !validHost.MatchString(identifier) {
		return "", fmt.Errorf("invalid tls-alpn-01 identifier %q: expected a DNS name without wildcard", identifier)
	}
	return filepath.Join(s.dir, challengesDir, alpnChallengeDir, identifier+".pem"), nil
}

// alpnChallengeCertificate reads the challenge certificate for serverName.
// RFC 8737 section 3 requires SNI in validation requests, so an empty name
// fails.
func (s *Store) alpnChallengeCertificate(serverName string) (*tls.Certificate, error) {
	path, err := s.alpnChallengePath(serverName)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errNoChallenge, err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%w for %q: %w", errNoChallenge, serverName, err)
	}
	cert, err := tls.X509KeyPair(data, data)
	if err != nil {
		return nil, fmt.Errorf("loading tls-alpn-01 challenge for %q: %w", serverName, err)
	}
	slog.Info("tls store: serving tls-alpn-01 challenge", "server_name", serverName)
	return &cert, nil
}

// encodePair writes the certificate chain and the PKCS #8 private key of
// cert into one PEM file.
func encodePair(cert *tls.Certificate) ([]byte, error) {
	if cert == nil || len(cert.Certificate) == 0 || cert.PrivateKey == nil {
		return nil, errors.New("the certificate or its private key is missing")
	}
	var buf bytes.Buffer
	for _, der := range cert.Certificate {
		pem.Encode(&buf, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(cert.PrivateKey)
	if err != nil {
		return nil, fmt.Errorf("encoding private key: %w", err)
	}
	pem.Encode(&buf, &pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return buf.Bytes(), nil
}

func removeFile(path string) error {
	err := os.Remove(path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("removing %s: %w", path, err)
	}
	return nil
}
