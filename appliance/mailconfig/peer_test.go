package mailconfig

import (
	"encoding/json"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// server is a Handler behind an HTTP server on loopback, which curl
// reaches under any host name through --resolve.
type server struct {
	t    *testing.T
	port string
	curl string

	// caFile, when set, is the certificate that curl trusts for HTTPS.
	caFile string
}

func startServer(t *testing.T, opts Options) *server {
	t.Helper()
	curl := testpeer.Require(t, "curl", "curl")
	h, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return &server{t: t, port: listenerPort(t, ts), curl: curl}
}

// startTLSServer serves the handler over HTTPS with a self-signed
// certificate for the handler's Hosts.
func startTLSServer(t *testing.T, opts Options) *server {
	t.Helper()
	curl := testpeer.Require(t, "curl", "curl")
	h, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	cert := testpeer.SelfSigned(t, h.Hosts()...)
	caFile, _ := cert.WriteFiles(t, t.TempDir(), "ca")

	ts := httptest.NewUnstartedServer(h)
	ts.TLS = cert.ServerConfig()
	ts.StartTLS()
	t.Cleanup(ts.Close)
	return &server{t: t, port: listenerPort(t, ts), curl: curl, caFile: caFile}
}

func listenerPort(t *testing.T, ts *httptest.Server) string {
	t.Helper()
	_, port, err := net.SplitHostPort(ts.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// curlResult is what curl wrote about one response.
type curlResult struct {
	status      string
	contentType string
	allow       string
	body        []byte
}

// request runs curl for http://HOST:PORT/PATH with extra curl arguments,
// and returns the status, the content type, the Allow header and the body.
func (s *server) request(host, pathAndQuery string, args ...string) curlResult {
	s.t.Helper()
	dir := s.t.TempDir()
	bodyFile := filepath.Join(dir, "body")
	headerFile := filepath.Join(dir, "headers")
	scheme := "http"
	cmdArgs := []string{
		"-sS", "--max-time", "10",
		"--resolve", host + ":" + s.port + ":127.0.0.1",
		"-o", bodyFile, "-D", headerFile,
		"-w", "%{http_code}\n%{content_type}",
	}
	if s.caFile != "" {
		scheme = "https"
		cmdArgs = append(cmdArgs, "--cacert", s.caFile)
	}
	url := scheme + "://" + host + ":" + s.port + pathAndQuery
	cmdArgs = append(cmdArgs, args...)
	cmdArgs = append(cmdArgs, url)

	out, err := exec.Command(s.curl, cmdArgs...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("curl %s: %v\n%s", url, err, out)
	}

	status, contentType, _ := strings.Cut(string(out), "\n")
	body, err := os.ReadFile(bodyFile)
	if err != nil && !os.IsNotExist(err) {
		s.t.Fatal(err)
	}

	headers, err := os.ReadFile(headerFile)
	if err != nil {
		s.t.Fatal(err)
	}
	res := curlResult{status: status, contentType: contentType, body: body}
	for line := range strings.SplitSeq(string(headers), "\r\n") {
		if name, value, ok := strings.Cut(line, ":"); ok && strings.EqualFold(name, "Allow") {
			res.allow = strings.TrimSpace(value)
		}
	}
	return res
}

// python runs script with Debian's Python 3 on the standard input data and
// decodes the JSON that it prints into v.
func python(t *testing.T, script string, data []byte, v any) {
	t.Helper()
	// The python3 on PATH may be a pyenv shim without Debian's modules,
	// so the test runs Debian's interpreter.
	py := testpeer.Require(t, "/usr/bin/python3", "python3")
	cmd := exec.Command(py, "-c", script)
	cmd.Stdin = strings.NewReader(string(data))
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("python: %v\n%s\ninput:\n%s", err, stderr.String(), data)
	}
	if err := json.Unmarshal(out, v); err != nil {
		t.Fatalf("decoding python output %q: %v", out, err)
	}
}

// clientConfigScript reads a Thunderbird autoconfig file with xml.etree.
const clientConfigScript = `
import json, sys, xml.etree.ElementTree as ET
root = ET.fromstring(sys.stdin.buffer.read())
assert root.tag == "clientConfig", root.tag
provider = root.find("emailProvider")
def server(e):
    return {"type": e.get("type"), "hostname": e.findtext("hostname"),
            "port": int(e.findtext("port")), "socketType": e.findtext("socketType"),
            "username": e.findtext("username"), "authentication": e.findtext("authentication")}
print(json.dumps({
    "version": root.get("version"),
    "id": provider.get("id"),
    "domains": [d.text for d in provider.findall("domain")],
    "incoming": [server(e) for e in provider.findall("incomingServer")],
    "outgoing": [server(e) for e in provider.findall("outgoingServer")],
}))
`

type parsedClientConfig struct {
	Version  string         `json:"version"`
	ID       string         `json:"id"`
	Domains  []string       `json:"domains"`
	Incoming []parsedServer `json:"incoming"`
	Outgoing []parsedServer `json:"outgoing"`
}

type parsedServer struct {
	Type           string `json:"type"`
	Hostname       string `json:"hostname"`
	Port           int    `json:"port"`
	SocketType     string `json:"socketType"`
	Username       string `json:"username"`
	Authentication string `json:"authentication"`
}

// autodiscoverScript reads a POX autodiscover response with xml.etree and
// checks its namespaces.
const autodiscoverScript = `
import json, sys, xml.etree.ElementTree as ET
RESP = "{http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006}"
OUTLOOK = "{http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a}"
root = ET.fromstring(sys.stdin.buffer.read())
assert root.tag == RESP + "Autodiscover", root.tag
result = {"protocols": [], "error_code": 0, "error_message": ""}
error = root.find(RESP + "Response/" + RESP + "Error")
if error is not None:
    result["error_code"] = int(error.findtext(RESP + "ErrorCode"))
    result["error_message"] = error.findtext(RESP + "Message")
account = root.find(OUTLOOK + "Response/" + OUTLOOK + "Account")
if account is not None:
    result["account_type"] = account.findtext(OUTLOOK + "AccountType")
    result["action"] = account.findtext(OUTLOOK + "Action")
    for p in account.findall(OUTLOOK + "Protocol"):
        result["protocols"].append({k: p.findtext(OUTLOOK + k) for k in
            ["Type", "Server", "Port", "LoginName", "DomainRequired", "SPA", "SSL", "Encryption", "AuthRequired"]})
print(json.dumps(result))
`

type parsedAutodiscover struct {
	AccountType  string              `json:"account_type"`
	Action       string              `json:"action"`
	Protocols    []map[string]string `json:"protocols"`
	ErrorCode    int                 `json:"error_code"`
	ErrorMessage string              `json:"error_message"`
}

// mtaSTSScript parses an MTA-STS policy as RFC 8461 section 3.2 defines it:
// CRLF-separated "key: value" lines, and it fails on any other line.
const mtaSTSScript = `
import json, re, sys
text = sys.stdin.buffer.read().decode("ascii")
assert text.endswith("\r\n"), repr(text)
fields = {"mx": []}
for line in text[:-2].split("\r\n"):
    m = re.fullmatch(r"([A-Za-z0-9_]+):[ \t]*([\x21-\x3a\x3c\x3e-\x7e]+)[ \t]*", line)
    assert m, repr(line)
    key, value = m.groups()
    if key == "mx":
        fields["mx"].append(value)
    else:
        assert key not in fields, key
        fields[key] = value
assert fields["version"] == "STSv1", fields
assert fields["mode"] in ("enforce", "testing", "none"), fields
assert 0 <= int(fields["max_age"]) <= 31557600, fields
fields["max_age"] = int(fields["max_age"])
print(json.dumps(fields))
`

type parsedPolicy struct {
	Version string   `json:"version"`
	Mode    string   `json:"mode"`
	MX      []string `json:"mx"`
	MaxAge  int      `json:"max_age"`
}
