// Package control is the local API between heimwolke and heimwolke-agent:
// JSON over HTTP on Unix sockets under /run/heimwolke. It defines the
// messages, the paths and a server and client for them, so that both programs
// agree on every field, status code and error.
package control

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Socket paths on the box. HTTP requests go one way, so each program serves
// its own socket: the agent the status, settings and update endpoints,
// heimwolke the events that the agent sends it.
const (
	AgentSocket    = "/run/heimwolke/control.sock"
	ServicesSocket = "/run/heimwolke/services.sock"
)

// API paths.
const (
	// PathStatus serves GET with a Status.
	PathStatus = "/v1/status"
	// PathSettings takes PUT with Settings and replies 204 No Content, and
	// serves GET with the Settings last stored.
	PathSettings = "/v1/settings"
	// PathCertificateEvent takes POST with a CertificateEvent and replies
	// 204 No Content.
	PathCertificateEvent = "/v1/events/certificate"
	// PathRecords takes PUT with ServiceRecords and replies 204 No
	// Content: the DNS records that heimwolke's services need.
	PathRecords = "/v1/records"
	// PathUpdate takes POST with an empty body and replies 202 Accepted once
	// the update has started.
	PathUpdate = "/v1/update"
)

// MaxBodyBytes is the largest request body the server reads; larger ones get
// 413 Request Entity Too Large.
const MaxBodyBytes = 64 << 10

// Status describes a running program.
type Status struct {
	// Program is "heimwolke-agent" or "heimwolke".
	Program string `json:"program"`
	Version string `json:"version"`
	// StartedAt is when the process started.
	StartedAt     time.Time `json:"started_at"`
	UptimeSeconds int64     `json:"uptime_seconds"`
	// DNS, Certificate and Update are reported by the agent; nil means
	// that the program does not do that work, or has not started it.
	DNS         *DNSStatus         `json:"dns,omitempty"`
	Certificate *CertificateStatus `json:"certificate,omitempty"`
	Update      *UpdateStatus      `json:"update,omitempty"`
	// Network and Ports are the connection as the agent sees it and the
	// router's port mappings; nil before the agent looked.
	Network *NetworkStatus `json:"network,omitempty"`
	Ports   *PortsStatus   `json:"ports,omitempty"`
}

// Network classes in NetworkStatus.Class.
const (
	NetworkPublic    = "public"        // the router has a public IPv4 address
	NetworkCGNAT     = "cgnat"         // the router's WAN address is in 100.64.0.0/10
	NetworkDoubleNAT = "double_nat"    // the router's WAN address is private
	NetworkDSLite    = "ds_lite"       // IPv4 only through the provider's DS-Lite tunnel
	NetworkNoWAN     = "no_public_wan" // the router reports no public WAN address
	NetworkNoIPv4    = "no_ipv4"       // no IPv4 at all
	NetworkUnknown   = "unknown"
)

// NetworkStatus is the box's connection to the internet.
type NetworkStatus struct {
	// Class is one of the Network constants.
	Class string `json:"class,omitempty"`
	// WAN is the router's WAN address, empty when the router did not say.
	WAN string `json:"wan,omitempty"`
	// PublicIPv4 and PublicIPv6 are the addresses that the agent found.
	PublicIPv4 string `json:"public_ipv4,omitempty"`
	PublicIPv6 string `json:"public_ipv6,omitempty"`
	// Disagreement lists the sources that named different IPv4 addresses,
	// as "source=address, ...", empty when they agreed.
	Disagreement string    `json:"disagreement,omitempty"`
	CheckedAt    time.Time `json:"checked_at,omitzero"`
	// Rebind is whether the router's resolver answers for RebindName from
	// the LAN: "ok", "blocked" (DNS rebind protection drops the answer),
	// "unknown" (no answer at all), or empty when not checked.
	Rebind     string `json:"rebind,omitempty"`
	RebindName string `json:"rebind_name,omitempty"`
}

// RecordStatus is one DNS record that the agent publishes.
type RecordStatus struct {
	Name  string `json:"name"`
	Type  string `json:"type"`
	Value string `json:"value,omitempty"`
	// State is "published", "missing", "wrong" or "pending".
	State      string    `json:"state"`
	LastUpdate time.Time `json:"last_update,omitzero"`
	LastError  string    `json:"last_error,omitempty"`
}

// PortsStatus is the state of the router's port mappings.
type PortsStatus struct {
	// Router names the router and the protocol that it answered, empty
	// when none answered.
	Router string       `json:"router,omitempty"`
	Ports  []PortStatus `json:"ports,omitempty"`
}

// PortStatus is one mapped or unmapped TCP port.
type PortStatus struct {
	Port   uint16 `json:"port"`
	Mapped bool   `json:"mapped"`
	// Protocol is "upnp", "pcp" or "nat-pmp" for a mapped port.
	Protocol string    `json:"protocol,omitempty"`
	Expires  time.Time `json:"expires,omitzero"`
	// Reason is a code for why the port is not mapped, which the admin UI
	// turns into instructions, and Error the router's answer.
	Reason string `json:"reason,omitempty"`
	Error  string `json:"error,omitempty"`
}

// DNSStatus is the state of the dynamic DNS updates.
type DNSStatus struct {
	Provider string `json:"provider,omitempty"`
	Hostname string `json:"hostname,omitempty"`
	// IPv4 and IPv6 are the addresses last published, empty when none.
	IPv4 string `json:"ipv4,omitempty"`
	IPv6 string `json:"ipv6,omitempty"`
	// LastUpdate is when the provider last accepted an update.
	LastUpdate time.Time `json:"last_update,omitzero"`
	// LastError describes the last failed update, empty after a success.
	LastError string `json:"last_error,omitempty"`
	// Records lists every record that the agent publishes.
	Records []RecordStatus `json:"records,omitempty"`
}

// CertificateStatus is the state of the TLS certificate.
type CertificateStatus struct {
	Names       []string  `json:"names,omitempty"`
	NotAfter    time.Time `json:"not_after,omitzero"`
	LastRenewal time.Time `json:"last_renewal,omitzero"`
	// LastError describes the last failed renewal, empty after a success.
	LastError string `json:"last_error,omitempty"`
	// Issuer is the issuing CA's name; Local is set when the box's own
	// certificate authority issued the certificate (no domain yet).
	Issuer string `json:"issuer,omitempty"`
	Local  bool   `json:"local,omitempty"`
	// Challenge is the ACME challenge type that validated the names.
	Challenge   string    `json:"challenge,omitempty"`
	NextAttempt time.Time `json:"next_attempt,omitzero"`
	// ExpiryWarning is set when the certificate expires within 14 days.
	ExpiryWarning bool `json:"expiry_warning,omitempty"`
}

// UpdateState is a step of an over-the-air update.
type UpdateState string

// Update states.
const (
	UpdateIdle        UpdateState = "idle"
	UpdateChecking    UpdateState = "checking"
	UpdateDownloading UpdateState = "downloading"
	UpdateInstalling  UpdateState = "installing"
	UpdateRebooting   UpdateState = "rebooting"
	UpdateFailed      UpdateState = "failed"
)

// UpdateStatus is the state of the over-the-air updates.
type UpdateStatus struct {
	State UpdateState `json:"state,omitempty"`
	// AvailableVersion is a newer version that was found, empty when none.
	AvailableVersion string    `json:"available_version,omitempty"`
	LastCheck        time.Time `json:"last_check,omitzero"`
	// LastError describes the last failed update, empty after a success.
	LastError string `json:"last_error,omitempty"`
}

// CertificateEvent is the notice that the agent wrote a new certificate, so
// that heimwolke's services load it without a restart.
type CertificateEvent struct {
	// Names are the DNS names that the certificate covers.
	Names []string `json:"names"`
	// CertFile and KeyFile are absolute paths of the PEM certificate chain
	// and private key.
	CertFile string    `json:"cert_file"`
	KeyFile  string    `json:"key_file"`
	NotAfter time.Time `json:"not_after"`
}

// Validate reports every missing or invalid field of e.
func (e CertificateEvent) Validate() error {
	var problems []Problem
	if len(e.Names) == 0 {
		problems = append(problems, Problem{"names", "missing: list the DNS names the certificate covers"})
	}
	for i, name := range e.Names {
		if err := checkDomainName(name); err != nil {
			problems = append(problems, Problem{fmt.Sprintf("names[%d]", i), err.Error()})
		}
	}
	problems = appendPathProblem(problems, "cert_file", e.CertFile)
	problems = appendPathProblem(problems, "key_file", e.KeyFile)
	if e.NotAfter.IsZero() {
		problems = append(problems, Problem{"not_after", "missing: give the certificate's expiry time"})
	}
	return newValidationError(problems)
}

// ServiceRecords are the DNS records that heimwolke's services need in
// the household's zone besides the addresses: MX, SPF, DKIM, DMARC and
// MTA-STS for mail, SRV and TXT for calendar discovery. The agent
// publishes them when the DNS provider has an API, and checks them at the
// zone's servers either way, so that the admin UI can mark each one.
type ServiceRecords struct {
	// Zone is the zone in ASCII, such as "example.org".
	Zone    string          `json:"zone"`
	Records []ServiceRecord `json:"records"`
}

// ServiceRecord is one record of ServiceRecords.
type ServiceRecord struct {
	// Name is relative to the zone, "@" for the zone's apex.
	Name string `json:"name"`
	Type string `json:"type"`
	// Data is the record data in presentation format (RFC 1035 section
	// 5.1) with absolute names, TXT text quoted.
	Data string `json:"data"`
	// TTL is in seconds.
	TTL int `json:"ttl"`
}

// maxServiceRecords caps a request; the services need about twenty.
const maxServiceRecords = 200

// Validate reports every missing or invalid field of r.
func (r ServiceRecords) Validate() error {
	var problems []Problem
	if err := checkDomainName(r.Zone); err != nil {
		problems = append(problems, Problem{"zone", err.Error()})
	}
	if len(r.Records) > maxServiceRecords {
		problems = append(problems, Problem{"records", fmt.Sprintf("%d records, more than %d", len(r.Records), maxServiceRecords)})
	}
	for i, rec := range r.Records {
		field := fmt.Sprintf("records[%d]", i)
		if rec.Name == "" || strings.ContainsAny(rec.Name, " \t\n") {
			problems = append(problems, Problem{field + ".name", fmt.Sprintf("invalid name %q: give a name relative to the zone, or @", rec.Name)})
		}
		switch rec.Type {
		case "MX", "TXT", "SRV", "CNAME", "CAA", "TLSA":
		default:
			problems = append(problems, Problem{field + ".type", fmt.Sprintf("type %q is not one the services publish: use MX, TXT, SRV, CNAME, CAA or TLSA", rec.Type)})
		}
		if rec.Data == "" {
			problems = append(problems, Problem{field + ".data", "missing: give the record data"})
		}
		if rec.TTL < 60 || rec.TTL > 86400 {
			problems = append(problems, Problem{field + ".ttl", fmt.Sprintf("TTL %d is outside 60 to 86400 seconds", rec.TTL)})
		}
	}
	return newValidationError(problems)
}

// Machine-readable error codes in Error.Code.
const (
	CodeBadRequest        = "bad_request"
	CodeBadJSON           = "bad_json"
	CodeUnsupportedSchema = "unsupported_schema_version"
	CodeInvalid           = "invalid"
	CodeBodyTooLarge      = "body_too_large"
	CodeNotFound          = "not_found"
	CodeNoSettings        = "no_settings"
	CodeMethodNotAllowed  = "method_not_allowed"
	CodeBusy              = "busy"
	CodeInternal          = "internal"
)

// Error is an error response of the API: the HTTP status and the JSON body.
// The client returns it for every status of 400 and above, and handlers may
// return one to choose the status themselves.
type Error struct {
	StatusCode int    `json:"-"`
	Code       string `json:"code"`
	Message    string `json:"message"`
	// Field names the JSON field at fault, as a dotted path such as
	// "updates.hour", when there is one.
	Field string `json:"field,omitempty"`
	// Problems lists every invalid field when Code is CodeInvalid.
	Problems []Problem `json:"problems,omitempty"`
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("control: %d %s: %s", e.StatusCode, e.Code, e.Message)
	if e.Field != "" {
		msg += " (field " + e.Field + ")"
	}
	return msg
}

// ErrBusy is returned by handlers that cannot start the requested work now,
// for example an update while one is running. The server replies 409
// Conflict.
var ErrBusy = errors.New("busy")

// Problem is one invalid field.
type Problem struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// ValidationError lists every invalid field of a message. The server replies
// 422 Unprocessable Entity with the list.
type ValidationError struct {
	Problems []Problem
}

func (e *ValidationError) Error() string {
	parts := make([]string, len(e.Problems))
	for i, p := range e.Problems {
		parts[i] = p.Field + ": " + p.Message
	}
	return "invalid fields: " + strings.Join(parts, "; ")
}

func newValidationError(problems []Problem) error {
	if len(problems) == 0 {
		return nil
	}
	return &ValidationError{Problems: problems}
}
