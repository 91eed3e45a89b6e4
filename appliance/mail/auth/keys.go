package auth

import (
	"crypto"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/emersion/go-msgauth/dkim"
)

// The DKIM selectors of the box's two keys. Every outbound message carries
// a signature from each, so that verifiers without Ed25519 support (RFC
// 8463) still find the RSA one.
const (
	SelectorEd25519 = "hw-ed25519"
	SelectorRSA     = "hw-rsa"
)

// rsaBits is the size of the RSA key. RFC 8301 section 3.2 requires at
// least 1024 bits and recommends 2048.
const rsaBits = 2048

// signedHeaders lists the header fields that the signatures cover (RFC 6376
// section 5.4.1). A field that a message lacks is signed as absent, so it
// cannot be added later without breaking the signature.
var signedHeaders = []string{
	"From", "Reply-To", "Subject", "Date", "To", "Cc", "Message-ID",
	"In-Reply-To", "References", "MIME-Version", "Content-Type",
	"Content-Transfer-Encoding",
}

// Keys contains the box's DKIM private keys.
type Keys struct {
	ed25519 ed25519.PrivateKey
	rsa     *rsa.PrivateKey
}

// DKIMRecord is the TXT record that publishes one public key at
// SELECTOR._domainkey.DOMAIN (RFC 6376 section 3.6.1).
type DKIMRecord struct {
	Selector string
	Text     string
}

// LoadOrCreateKeys reads the keys dkim-ed25519.pem and dkim-rsa.pem from
// dir, and generates and writes any that are missing, with mode 0600.
func LoadOrCreateKeys(dir string) (*Keys, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating DKIM key folder: %w", err)
	}
	edKey, err := loadOrCreateKey(filepath.Join(dir, "dkim-ed25519.pem"), func() (crypto.Signer, error) {
		_, k, err := ed25519.GenerateKey(rand.Reader)
		return k, err
	})
	if err != nil {
		return nil, err
	}
	rsaKey, err := loadOrCreateKey(filepath.Join(dir, "dkim-rsa.pem"), func() (crypto.Signer, error) {
		return rsa.GenerateKey(rand.Reader, rsaBits)
	})
	if err != nil {
		return nil, err
	}

	k := &Keys{}
	var ok1, ok2 bool
	k.ed25519, ok1 = edKey.(ed25519.PrivateKey)
	k.rsa, ok2 = rsaKey.(*rsa.PrivateKey)
	if !ok1 || !ok2 {
		return nil, fmt.Errorf("reading DKIM keys in %s: a key file has the wrong key type: delete it to generate a new key", dir)
	}
	return k, nil
}

func loadOrCreateKey(path string, generate func() (crypto.Signer, error)) (crypto.Signer, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		return parseKey(path, b)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("reading DKIM key: %w", err)
	}

	key, err := generate()
	if err != nil {
		return nil, fmt.Errorf("generating DKIM key %s: %w", path, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, fmt.Errorf("encoding DKIM key %s: %w", path, err)
	}
	data := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if err := writeFileSynced(path, data, 0o600); err != nil {
		return nil, fmt.Errorf("writing DKIM key: %w", err)
	}
	return key, nil
}

func parseKey(path string, b []byte) (crypto.Signer, error) {
	block, _ := pem.Decode(b)
	if block == nil || block.Type != "PRIVATE KEY" {
		return nil, fmt.Errorf("reading DKIM key %s: no PRIVATE KEY PEM block: delete the file to generate a new key", path)
	}
	key, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("reading DKIM key %s: %w", path, err)
	}
	signer, ok := key.(crypto.Signer)
	if !ok {
		return nil, fmt.Errorf("reading DKIM key %s: %T cannot sign", path, key)
	}
	return signer, nil
}

// writeFileSynced writes a file so that it survives a power cut once this
// returns: temporary file, fsync, rename, fsync of the folder.
func writeFileSynced(path string, data []byte, perm os.FileMode) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(perm); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}

	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}

	if err := os.Rename(f.Name(), path); err != nil {
		return err
	}

	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// Records returns the TXT records that publish the public keys (RFC 6376
// section 3.6.1, RFC 8463 section 4.2).
func (k *Keys) Records() []DKIMRecord {
	rsaDER, err := x509.MarshalPKIXPublicKey(&k.rsa.PublicKey)
	if err != nil {
		panic(err) // an *rsa.PublicKey always marshals
	}
	return []DKIMRecord{
		{SelectorEd25519, "v=DKIM1; k=ed25519; p=" + base64.StdEncoding.EncodeToString(k.ed25519.Public().(ed25519.PublicKey))},
		{SelectorRSA, "v=DKIM1; k=rsa; p=" + base64.StdEncoding.EncodeToString(rsaDER)},
	}
}

// SignatureFields reads a message from msg and returns two DKIM-Signature
// header fields for domain, one per key, with relaxed/relaxed
// canonicalization (RFC 6376 section 3.4). Prepended to the unchanged
// message, they sign it. Both signatures are computed in one pass over msg,
// and only the header section and the hash states are kept in memory.
func (k *Keys) SignatureFields(domain string, msg io.Reader) ([]byte, error) {
	rsaSigner, err := newSigner(domain, SelectorRSA, k.rsa)
	if err != nil {
		return nil, err
	}
	edSigner, err := newSigner(domain, SelectorEd25519, k.ed25519)
	if err != nil {
		rsaSigner.Close()
		return nil, err
	}

	_, copyErr := io.Copy(io.MultiWriter(rsaSigner, edSigner), msg)
	closeErr := errors.Join(rsaSigner.Close(), edSigner.Close())
	if copyErr != nil {
		return nil, fmt.Errorf("signing message for %s: %w", domain, copyErr)
	}
	if closeErr != nil {
		return nil, fmt.Errorf("signing message for %s: %w", domain, closeErr)
	}
	return []byte(rsaSigner.Signature() + edSigner.Signature()), nil
}

func newSigner(domain, selector string, key crypto.Signer) (*dkim.Signer, error) {
	signer, err := dkim.NewSigner(&dkim.SignOptions{
		Domain:                 domain,
		Selector:               selector,
		Signer:                 key,
		HeaderCanonicalization: dkim.CanonicalizationRelaxed,
		BodyCanonicalization:   dkim.CanonicalizationRelaxed,
		HeaderKeys:             signedHeaders,
	})
	if err != nil {
		return nil, fmt.Errorf("signing for %s with selector %s: %w", domain, selector, err)
	}
	return signer, nil
}
