package webui

import (
	"crypto/sha256"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"strings"
	"time"
)

// Paths of the local root certificate, which visitors download without
// logging in, because it is public and devices need it before they trust
// the box's HTTPS pages.
const (
	localCAPagePath  = "/ca/"
	localRootPEMPath = "/ca/heimwolke-root.crt"
	localRootDERPath = "/ca/heimwolke-root.cer"
)

// certificateDocs are the documentation pages on certificates, by language.
//
// NOTE: the links assume that the project's repository is published at
// the address of its Go module path.
var certificateDocs = map[string]string{
	"de": "https://github.com/heimwolke/heimwolke/blob/main/docs/de/zertifikate.md",
	"en": "https://github.com/heimwolke/heimwolke/blob/main/docs/en/certificates.md",
}

// errNoLocalRoot means that Options.LocalRootFile is empty.
var errNoLocalRoot = errors.New("no local root certificate configured: Options.LocalRootFile is empty")

// localRootView is the box's own root certificate as the dashboard and the
// download page show it.
type localRootView struct {
	// Name is the root's subject common name, "Heimwolke box local CA".
	Name     string
	NotAfter time.Time

	// Fingerprint is the SHA-256 fingerprint of the DER certificate in
	// colon-separated upper-case hex, as "openssl x509 -fingerprint"
	// prints it.
	Fingerprint string

	PEMHref, DERHref, PageHref string

	// DocsURL is the certificates page of the documentation in the
	// page's language.
	DocsURL string

	Platforms []installSteps
}

// installSteps are the catalog keys of the steps that install the root
// certificate on one kind of device.
type installSteps struct {
	ID    string
	Name  string
	Steps []string
}

// localCAPlatforms lists the kinds of devices that the download page has
// install steps for, with the number of steps of each in the catalog as
// "admin.localca.ID.N", counting from 1.
var localCAPlatforms = []struct {
	id    string
	steps int
}{
	{"android", 3},
	{"ios", 3},
	{"windows", 3},
	{"macos", 3},
	{"linux", 2},
}

func newInstallSteps() []installSteps {
	platforms := make([]installSteps, 0, len(localCAPlatforms))
	for _, p := range localCAPlatforms {
		s := installSteps{ID: p.id, Name: "admin.localca." + p.id}
		for n := 1; n <= p.steps; n++ {
			s.Steps = append(s.Steps, fmt.Sprintf("admin.localca.%s.%d", p.id, n))
		}
		platforms = append(platforms, s)
	}
	return platforms
}

func (h *Handler) registerLocalCARoutes() {
	h.mux.HandleFunc("GET "+localCAPagePath+"{$}", h.localCAPage)
	h.mux.HandleFunc("GET "+localRootPEMPath, h.serveLocalRoot)
	h.mux.HandleFunc("GET "+localRootDERPath, h.serveLocalRoot)
}

// readLocalRoot reads the first certificate of the PEM file at path and
// checks that it is a CA certificate.
func readLocalRoot(path string) (*x509.Certificate, error) {
	if path == "" {
		return nil, errNoLocalRoot
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading local root certificate: %w", err)
	}
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("reading local root certificate %s: no PEM CERTIFICATE block at its start, check Options.LocalRootFile", path)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("parsing local root certificate %s: %w", path, err)
	}
	if !cert.IsCA {
		return nil, fmt.Errorf("local root certificate %s (%s) is not a CA certificate, check Options.LocalRootFile", path, cert.Subject.CommonName)
	}
	return cert, nil
}

// loadLocalRoot returns the local root certificate, or nil when there is
// none. It logs a root that exists but cannot be read.
func (h *Handler) loadLocalRoot() *x509.Certificate {
	cert, err := readLocalRoot(h.localRootFile)
	switch {
	case err == nil:
		return cert
	case errors.Is(err, errNoLocalRoot), errors.Is(err, fs.ErrNotExist):
		return nil
	}
	h.log.Warn("local root certificate unreadable", "path", h.localRootFile, "err", err)
	return nil
}

// localRootView returns the view of the local root certificate for a page
// in lang, nil when there is none.
func (h *Handler) localRootView(lang string) *localRootView {
	cert := h.loadLocalRoot()
	if cert == nil {
		return nil
	}
	return &localRootView{
		Name:        cert.Subject.CommonName,
		NotAfter:    cert.NotAfter,
		Fingerprint: fingerprint(cert.Raw),
		PEMHref:     localRootPEMPath,
		DERHref:     localRootDERPath,
		PageHref:    localCAPagePath,
		DocsURL:     certificateDocs[lang],
		Platforms:   newInstallSteps(),
	}
}

// fingerprint returns the SHA-256 hash of der as colon-separated upper-case
// hex.
func fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	parts := make([]string, len(sum))
	for i, b := range sum {
		parts[i] = fmt.Sprintf("%02X", b)
	}
	return strings.Join(parts, ":")
}

// localCAPage shows the downloads of the local root certificate and the
// steps that install it on each kind of device. It needs no login.
func (h *Handler) localCAPage(w http.ResponseWriter, r *http.Request) {
	v := visitOf(r)
	root := h.localRootView(v.lang)
	if root == nil {
		h.renderMessage(w, v, http.StatusNotFound, "admin.localca.title", "admin.localca.none", "")
		return
	}
	p := h.newPage(v, "admin.localca.title")
	if v.session == nil {
		other := "de"
		if v.lang == "de" {
			other = "en"
		}
		p.LanguageSwitch = localCAPagePath + "?lang=" + other
	}
	p.Data = root
	h.render(w, http.StatusOK, "admin_localca", p)
}

// serveLocalRoot sends the local root certificate: PEM for the .crt path,
// DER for the .cer path. It encodes the certificate afresh, so that
// nothing else in the file, such as a key by mistake, is ever sent.
func (h *Handler) serveLocalRoot(w http.ResponseWriter, r *http.Request) {
	cert := h.loadLocalRoot()
	if cert == nil {
		h.notFound(w, r)
		return
	}

	name := localRootDERPath[strings.LastIndex(localRootDERPath, "/")+1:]
	body := cert.Raw
	if r.URL.Path == localRootPEMPath {
		name = localRootPEMPath[strings.LastIndex(localRootPEMPath, "/")+1:]
		body = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
	}

	// application/x-x509-ca-cert is the type that browsers commonly hand
	// to the system's CA certificate import, for PEM and DER alike. RFC
	// 2585 section 4.1 registers application/pkix-cert, but for DER only.
	// NOTE: the import on real Android and iOS devices is untested.
	w.Header().Set("Content-Type", "application/x-x509-ca-cert")
	w.Header().Set("Content-Disposition", `attachment; filename="`+name+`"`)
	w.Header().Set("Content-Length", fmt.Sprint(len(body)))
	w.Write(body)
}
