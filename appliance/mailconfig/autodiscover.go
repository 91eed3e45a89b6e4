package mailconfig

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
)

// Namespaces of the POX autodiscover protocol, as Microsoft's [MS-OXDSCLI]
// specification names them.
const (
	autodiscoverRequestNS  = "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006"
	autodiscoverResponseNS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
	outlookResponseSchema  = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
)

// maxAutodiscoverBody caps the request body. Outlook's request is a few
// hundred bytes.
const maxAutodiscoverBody = 64 << 10

// Error codes of the POX autodiscover error response.
const (
	errorCodeNoMailbox       = 500 // the address is not one of this server's
	errorCodeInvalidRequest  = 600
	errorCodeSchemaNotServed = 601 // the requested response schema is not offered
)

// errXMLDirective reports a DOCTYPE or other directive, the only place where
// XML entities could be declared.
var errXMLDirective = errors.New("XML directives such as DOCTYPE are not accepted")

type autodiscoverRequest struct {
	XMLName xml.Name `xml:"Autodiscover"`
	Request struct {
		EMailAddress             string `xml:"EMailAddress"`
		AcceptableResponseSchema string `xml:"AcceptableResponseSchema"`
	} `xml:"Request"`
}

type autodiscoverResponse struct {
	XMLName  xml.Name `xml:"http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006 Autodiscover"`
	Response any
}

type outlookResponse struct {
	XMLName xml.Name       `xml:"http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a Response"`
	Account outlookAccount `xml:"Account"`
}

type outlookAccount struct {
	AccountType string            `xml:"AccountType"`
	Action      string            `xml:"Action"`
	Protocols   []outlookProtocol `xml:"Protocol"`
}

// outlookProtocol is one server. Every on/off field is written, because a
// missing SPA means "on" to Outlook.
type outlookProtocol struct {
	Type           string `xml:"Type"`
	Server         string `xml:"Server"`
	Port           int    `xml:"Port"`
	LoginName      string `xml:"LoginName"`
	DomainRequired string `xml:"DomainRequired"`
	SPA            string `xml:"SPA"`
	SSL            string `xml:"SSL"`
	// Encryption "SSL" names implicit TLS for clients that read
	// Encryption in place of SSL.
	Encryption   string `xml:"Encryption"`
	AuthRequired string `xml:"AuthRequired"`
}

type errorResponse struct {
	XMLName xml.Name          `xml:"Response"`
	Error   autodiscoverError `xml:"Error"`
}

type autodiscoverError struct {
	ErrorCode int    `xml:"ErrorCode"`
	Message   string `xml:"Message"`
	DebugData string `xml:"DebugData"`
}

// serveAutodiscover responds to Outlook's POST with the IMAP and SMTP
// settings of the address in the request. A GET, which is what a browser
// sends, gets the "600 Invalid Request" error with status 200, so that
// opening the URL shows that the service is reachable.
func (h *Handler) serveAutodiscover(w http.ResponseWriter, r *http.Request) {
	if !allowMethods(w, r, http.MethodGet, http.MethodHead, http.MethodPost) {
		return
	}
	if r.Method != http.MethodPost {
		h.writeAutodiscoverError(w, http.StatusOK, errorCodeInvalidRequest, "Invalid Request")
		return
	}

	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxAutodiscoverBody))
	var tooLarge *http.MaxBytesError
	if errors.As(err, &tooLarge) {
		h.log.Debug("autodiscover request rejected", "reason", "body too large", "remote_addr", r.RemoteAddr)
		http.Error(w, fmt.Sprintf("request body larger than %d bytes", maxAutodiscoverBody), http.StatusRequestEntityTooLarge)
		return
	}
	if err != nil {
		h.log.Debug("autodiscover request failed", "err", err, "remote_addr", r.RemoteAddr)
		return
	}

	req, err := parseAutodiscoverRequest(body)
	if err != nil {
		h.log.Debug("autodiscover request rejected", "err", err, "remote_addr", r.RemoteAddr)
		h.writeAutodiscoverError(w, http.StatusBadRequest, errorCodeInvalidRequest, "Invalid Request")
		return
	}
	if req.Request.AcceptableResponseSchema != outlookResponseSchema {
		h.log.Debug("autodiscover request rejected", "reason", "response schema not served", "schema", req.Request.AcceptableResponseSchema, "remote_addr", r.RemoteAddr)
		h.writeAutodiscoverError(w, http.StatusOK, errorCodeSchemaNotServed, "Provider is not available")
		return
	}
	local, domain, ok := splitAddress(req.Request.EMailAddress)
	if !ok {
		h.log.Debug("autodiscover request rejected", "reason", "invalid address", "remote_addr", r.RemoteAddr)
		h.writeAutodiscoverError(w, http.StatusBadRequest, errorCodeInvalidRequest, "Invalid Request")
		return
	}
	if domain != h.domain {
		h.log.Debug("autodiscover request rejected", "reason", "other domain", "domain", domain, "remote_addr", r.RemoteAddr)
		h.writeAutodiscoverError(w, http.StatusNotFound, errorCodeNoMailbox, "The email address can't be found.")
		return
	}

	h.writeAutodiscover(w, http.StatusOK, h.outlookResponse(loginName(local)))
}

// parseAutodiscoverRequest parses a POX request. Go's decoder expands only
// the five predefined entities and fails on any other reference. A DOCTYPE
// is rejected before decoding, so that no document can declare entities.
func parseAutodiscoverRequest(body []byte) (*autodiscoverRequest, error) {
	d := xml.NewDecoder(bytes.NewReader(body))
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("parsing autodiscover request: %w", err)
		}
		if _, ok := tok.(xml.Directive); ok {
			return nil, fmt.Errorf("parsing autodiscover request: %w", errXMLDirective)
		}
	}

	req := &autodiscoverRequest{}
	if err := xml.Unmarshal(body, req); err != nil {
		return nil, fmt.Errorf("parsing autodiscover request: %w", err)
	}
	if req.XMLName.Space != autodiscoverRequestNS {
		return nil, fmt.Errorf("parsing autodiscover request: namespace %q of Autodiscover element, want %q", req.XMLName.Space, autodiscoverRequestNS)
	}
	return req, nil
}

// outlookResponse offers one server per protocol type: IMAP with implicit
// TLS, and submission with implicit TLS, which RFC 8314 section 3.3
// prefers to STARTTLS.
func (h *Handler) outlookResponse(login string) outlookResponse {
	protocol := func(typ string, port int) outlookProtocol {
		return outlookProtocol{
			Type:           typ,
			Server:         h.mailHost,
			Port:           port,
			LoginName:      login,
			DomainRequired: "off",
			SPA:            "off",
			SSL:            "on",
			Encryption:     "SSL",
			AuthRequired:   "on",
		}
	}
	return outlookResponse{Account: outlookAccount{
		AccountType: "email",
		Action:      "settings",
		Protocols: []outlookProtocol{
			protocol("IMAP", h.imapPort),
			protocol("SMTP", h.submissionTLSPort),
		},
	}}
}

func (h *Handler) writeAutodiscoverError(w http.ResponseWriter, status, code int, message string) {
	h.writeAutodiscover(w, status, errorResponse{Error: autodiscoverError{ErrorCode: code, Message: message}})
}

func (h *Handler) writeAutodiscover(w http.ResponseWriter, status int, response any) {
	body, err := xml.MarshalIndent(autodiscoverResponse{Response: response}, "", "  ")
	if err != nil {
		h.log.Error("autodiscover encoding failed", "err", err)
		http.Error(w, "internal server error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/xml; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(xml.Header)+len(body)+1))
	w.WriteHeader(status)
	w.Write([]byte(xml.Header))
	w.Write(body)
	w.Write([]byte("\n"))
}
