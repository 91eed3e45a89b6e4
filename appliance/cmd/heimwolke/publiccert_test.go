package main

import (
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/packages/testpeer"
	"github.com/heimwolke/heimwolke/packages/tlsstore"
)

func TestPublicCertificateCovers(t *testing.T) {
	store, err := tlsstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	trusted := &publicCertificate{store: store}
	if trusted.covers("example.org") {
		t.Errorf("covers(example.org) without a certificate = true, want false")
	}

	cert := testpeer.SelfSigned(t, "example.org", "mail.example.org")
	if err := store.WriteCertificate(acmeCertificate, cert.CertPEM, cert.KeyPEM); err != nil {
		t.Fatal(err)
	}
	trusted = &publicCertificate{store: store} // a fresh cache
	for host, want := range map[string]bool{
		"example.org":      true,
		"mail.example.org": true,
		"heimwolke.local":  false,
		"192.168.178.20":   false,
		"www.example.org":  false,
	} {
		if got := trusted.covers(host); got != want {
			t.Errorf("covers(%s) = %v, want %v", host, got, want)
		}
	}

	expired := testpeer.SelfSignedWith(t, testpeer.CertOptions{NotBefore: time.Now().Add(-48 * time.Hour), NotAfter: time.Now().Add(-time.Hour)}, "example.org")
	if err := store.WriteCertificate(acmeCertificate, expired.CertPEM, expired.KeyPEM); err != nil {
		t.Fatal(err)
	}
	trusted = &publicCertificate{store: store}
	if trusted.covers("example.org") {
		t.Errorf("covers(example.org) with an expired certificate = true, want false")
	}
}

func TestServicesReadyNeedsCertificate(t *testing.T) {
	store, err := tlsstore.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	addrs := listenAddrs{https: "127.0.0.1:8443"}
	if servicesReady(store, addrs) {
		t.Errorf("servicesReady without a certificate = true, want false")
	}
	cert := testpeer.SelfSigned(t, "heimwolke.local")
	if err := store.WriteCertificate("local", cert.CertPEM, cert.KeyPEM); err != nil {
		t.Fatal(err)
	}
	store.Reload()
	if !servicesReady(store, addrs) {
		t.Errorf("servicesReady with a certificate = false, want true")
	}
	if servicesReady(store, listenAddrs{}) {
		t.Errorf("servicesReady without an HTTPS listener = true, want false")
	}
}
