package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// agent is a Handler like heimwolke-agent's: status, settings and updates.
type agent struct {
	dir       string
	status    Status
	statusErr error
	// block makes Status wait until its context ends.
	block bool

	mu      sync.Mutex
	updates int
	busy    bool
}

func (a *agent) Status(ctx context.Context) (Status, error) {
	if a.block {
		<-ctx.Done()
		return Status{}, ctx.Err()
	}
	return a.status, a.statusErr
}

func (a *agent) PutSettings(ctx context.Context, s Settings) error {
	return SaveSettings(filepath.Join(a.dir, "settings.json"), s)
}

func (a *agent) Update(ctx context.Context) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.busy {
		return fmt.Errorf("update to 1.2.3 running: %w", ErrBusy)
	}
	a.updates++
	return nil
}

// services is a Handler like heimwolke's: status and certificate events.
type services struct {
	mu     sync.Mutex
	events []CertificateEvent
}

func (s *services) Status(ctx context.Context) (Status, error) {
	return Status{Program: "heimwolke", Version: "1.0.0"}, nil
}

func (s *services) CertificateChanged(ctx context.Context, e CertificateEvent) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.events = append(s.events, e)
	return nil
}

// serve starts a server for handler on a socket in a folder that does not
// exist yet, and stops it when the test ends.
func serve(t *testing.T, handler Handler, configure ...func(*Server)) (socketPath string, client *Client) {
	t.Helper()
	socketPath = filepath.Join(t.TempDir(), "run", "control.sock")
	startOn(t, socketPath, handler, configure...)
	return socketPath, NewClient(socketPath)
}

func startOn(t *testing.T, socketPath string, handler Handler, configure ...func(*Server)) {
	t.Helper()
	srv := NewServer(handler, slog.New(slog.DiscardHandler))
	for _, c := range configure {
		c(srv)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, socketPath) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve after cancel: got %v, want nil", err)
		}
	})
	waitForSocket(t, socketPath, done)
}

func waitForSocket(t *testing.T, socketPath string, done chan error) {
	t.Helper()
	for range 200 {
		select {
		case err := <-done:
			t.Fatalf("Serve returned early: %v", err)
		default:
		}
		if conn, err := net.Dial("unix", socketPath); err == nil {
			conn.Close()
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("socket %s not accepting connections after 2 s", socketPath)
}

// raw sends a request with the standard HTTP client, bypassing Client.
func raw(t *testing.T, socketPath, method, path, body string) (int, http.Header, []byte) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", socketPath)
		},
	}}
	req, err := http.NewRequest(method, "http://control"+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, data
}

func decodeError(t *testing.T, body []byte) Error {
	t.Helper()
	var e Error
	if err := json.Unmarshal(body, &e); err != nil {
		t.Fatalf("error body %q is not JSON: %v", body, err)
	}
	return e
}

func validSettings() Settings {
	return Settings{
		SchemaVersion: SchemaVersion,
		Domain:        "example.org",
		Language:      "de",
		DNS:           DNSSettings{Provider: "desec", Hostname: "box.example.org", Token: "s3cret-token"},
		ACME:          ACMESettings{Email: "admin@example.org"},
		Updates:       UpdateSettings{Automatic: true, Channel: "stable", Hour: 3},
		Relay:         RelaySettings{Enabled: true, Address: "relay.example.net:7000"},
	}
}

func settingsJSON(t *testing.T, change func(map[string]any)) string {
	t.Helper()
	data, _ := json.Marshal(validSettings())
	var m map[string]any
	json.Unmarshal(data, &m)
	change(m)
	data, _ = json.Marshal(m)
	return string(data)
}

func TestStatusRoundTrip(t *testing.T) {
	started := time.Date(2026, 5, 1, 8, 0, 0, 0, time.UTC)
	want := Status{
		Program:       "heimwolke-agent",
		Version:       "1.4.0",
		StartedAt:     started,
		UptimeSeconds: 3600,
		DNS:           &DNSStatus{Provider: "desec", Hostname: "box.example.org", IPv6: "2001:db8::1", LastUpdate: started.Add(time.Minute)},
		Certificate:   &CertificateStatus{Names: []string{"example.org"}, NotAfter: started.Add(90 * 24 * time.Hour)},
		Update:        &UpdateStatus{State: UpdateIdle, LastCheck: started},
	}
	_, client := serve(t, &agent{dir: t.TempDir(), status: want})
	got, err := client.Status(context.Background())
	if err != nil {
		t.Fatalf("Status: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Status() = %+v, want %+v", got, want)
	}
}

func TestStatusOmitsEmptyParts(t *testing.T) {
	socket, _ := serve(t, &agent{dir: t.TempDir(), status: Status{Program: "heimwolke-agent", Version: "1.0.0"}})
	code, _, body := raw(t, socket, http.MethodGet, PathStatus, "")
	if code != http.StatusOK {
		t.Fatalf("GET %s: got %d, want 200", PathStatus, code)
	}
	for _, key := range []string{`"dns"`, `"certificate"`, `"update"`} {
		if bytes.Contains(body, []byte(key)) {
			t.Errorf("status body %s contains %s, want it left out", body, key)
		}
	}
}

func TestStatusWithCurl(t *testing.T) {
	curl := testpeer.Require(t, "curl", "curl")
	socket, _ := serve(t, &agent{dir: t.TempDir(), status: Status{Program: "heimwolke-agent", Version: "2.0.0"}})

	out, err := exec.Command(curl, "-sS", "--fail", "--unix-socket", socket, "http://localhost"+PathStatus).Output()
	if err != nil {
		t.Fatalf("curl GET %s: %v", PathStatus, err)
	}
	var status Status
	if err := json.Unmarshal(out, &status); err != nil || status.Version != "2.0.0" {
		t.Errorf("curl GET %s: got %q (%v), want JSON with version 2.0.0", PathStatus, out, err)
	}

	large := filepath.Join(t.TempDir(), "large.json")
	os.WriteFile(large, bytes.Repeat([]byte(" "), MaxBodyBytes+1), 0o600)
	out, err = exec.Command(curl, "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--unix-socket", socket,
		"-X", "PUT", "--data-binary", "@"+large, "http://localhost"+PathSettings).Output()
	if err != nil {
		t.Fatalf("curl PUT %s: %v", PathSettings, err)
	}
	if string(out) != "413" {
		t.Errorf("curl PUT of %d bytes: got status %s, want 413", MaxBodyBytes+1, out)
	}
}

func TestPutSettingsStoresFile(t *testing.T) {
	dir := t.TempDir()
	_, client := serve(t, &agent{dir: dir})
	want := validSettings()
	if err := client.PutSettings(context.Background(), want); err != nil {
		t.Fatalf("PutSettings: %v", err)
	}

	path := filepath.Join(dir, "settings.json")
	got, err := LoadSettings(path)
	if err != nil {
		t.Fatalf("LoadSettings: %v", err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("stored settings = %+v, want %+v", got, want)
	}
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if mode := info.Mode().Perm(); mode != 0o600 {
		t.Errorf("settings file mode: got %o, want 600", mode)
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		t.Errorf("files in the settings folder: got %d, want only settings.json (no temporary files)", len(entries))
	}
}

func TestPutSettingsBodyTooLarge(t *testing.T) {
	socket, _ := serve(t, &agent{dir: t.TempDir()})
	body := settingsJSON(t, func(m map[string]any) {
		m["dns"].(map[string]any)["token"] = strings.Repeat("x", MaxBodyBytes)
	})
	code, _, data := raw(t, socket, http.MethodPut, PathSettings, body)
	if code != http.StatusRequestEntityTooLarge {
		t.Fatalf("PUT of %d bytes: got %d, want 413", len(body), code)
	}
	if e := decodeError(t, data); e.Code != CodeBodyTooLarge {
		t.Errorf("error code: got %q, want %q", e.Code, CodeBodyTooLarge)
	}
}

func TestPutSettingsBadJSON(t *testing.T) {
	socket, _ := serve(t, &agent{dir: t.TempDir()})
	cases := []struct {
		name, body, field string
	}{
		{"wrong type", settingsJSON(t, func(m map[string]any) { m["updates"].(map[string]any)["hour"] = "three" }), "updates.hour"},
		{"unknown field", settingsJSON(t, func(m map[string]any) { m["colour"] = "blue" }), "colour"},
		{"missing schema version", settingsJSON(t, func(m map[string]any) { delete(m, "schema_version") }), "schema_version"},
		{"syntax error", `{"schema_version": 1,`, ""},
		{"trailing data", settingsJSON(t, func(map[string]any) {}) + "{}", ""},
	}
	for _, c := range cases {
		code, _, data := raw(t, socket, http.MethodPut, PathSettings, c.body)
		if code != http.StatusBadRequest {
			t.Errorf("%s: got status %d, want 400", c.name, code)
			continue
		}
		e := decodeError(t, data)
		if e.Code != CodeBadJSON {
			t.Errorf("%s: got code %q, want %q", c.name, e.Code, CodeBadJSON)
		}
		if e.Field != c.field {
			t.Errorf("%s: got field %q, want %q (message %q)", c.name, e.Field, c.field, e.Message)
		}
	}
}

func TestPutSettingsUnknownSchemaVersion(t *testing.T) {
	socket, client := serve(t, &agent{dir: t.TempDir()})
	body := settingsJSON(t, func(m map[string]any) { m["schema_version"] = 2 })
	code, _, data := raw(t, socket, http.MethodPut, PathSettings, body)
	if code != http.StatusBadRequest {
		t.Fatalf("schema_version 2: got status %d, want 400", code)
	}
	if e := decodeError(t, data); e.Code != CodeUnsupportedSchema || e.Field != "schema_version" {
		t.Errorf("schema_version 2: got code %q field %q, want %q and schema_version", e.Code, e.Field, CodeUnsupportedSchema)
	}

	s := validSettings()
	s.SchemaVersion = 2
	err := client.PutSettings(context.Background(), s)
	var apiErr *Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusBadRequest || apiErr.Code != CodeUnsupportedSchema {
		t.Errorf("PutSettings with schema_version 2: got %v, want *Error 400 %s", err, CodeUnsupportedSchema)
	}
}

func TestPutSettingsInvalidValues(t *testing.T) {
	_, client := serve(t, &agent{dir: t.TempDir()})
	s := validSettings()
	s.ACME.Email = "not an address"
	s.Updates.Hour = 25
	err := client.PutSettings(context.Background(), s)
	var apiErr *Error
	if !errors.As(err, &apiErr) {
		t.Fatalf("PutSettings with invalid values: got %v, want *Error", err)
	}
	if apiErr.StatusCode != http.StatusUnprocessableEntity || apiErr.Code != CodeInvalid {
		t.Errorf("got status %d code %q, want 422 %q", apiErr.StatusCode, apiErr.Code, CodeInvalid)
	}
	var fields []string
	for _, p := range apiErr.Problems {
		fields = append(fields, p.Field)
	}
	if want := []string{"acme.email", "updates.hour"}; !reflect.DeepEqual(fields, want) {
		t.Errorf("problem fields: got %v, want %v", fields, want)
	}
}

func TestSocketPermissions(t *testing.T) {
	socket, _ := serve(t, &agent{dir: t.TempDir()})
	info, err := os.Stat(socket)
	if err != nil {
		t.Fatal(err)
	}
	if info.Mode().Type() != os.ModeSocket || info.Mode().Perm() != 0o600 {
		t.Errorf("socket mode: got %v, want a socket with mode 0600", info.Mode())
	}
	dirInfo, err := os.Stat(filepath.Dir(socket))
	if err != nil {
		t.Fatal(err)
	}
	if dirInfo.Mode().Perm() != 0o700 {
		t.Errorf("socket folder mode: got %o, want 700", dirInfo.Mode().Perm())
	}
}

func TestServeReplacesStaleSocket(t *testing.T) {
	socket := filepath.Join(t.TempDir(), "control.sock")
	old, err := net.ListenUnix("unix", &net.UnixAddr{Name: socket, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	old.SetUnlinkOnClose(false)
	old.Close()

	startOn(t, socket, &agent{dir: t.TempDir(), status: Status{Version: "3.0.0"}})
	status, err := NewClient(socket).Status(context.Background())
	if err != nil || status.Version != "3.0.0" {
		t.Errorf("Status after replacing a stale socket: got %+v, %v; want version 3.0.0", status, err)
	}
}

func TestServeRejectsSocketInUse(t *testing.T) {
	socket, _ := serve(t, &agent{dir: t.TempDir()})
	err := NewServer(&agent{}, slog.New(slog.DiscardHandler)).Serve(context.Background(), socket)
	if err == nil || !strings.Contains(err.Error(), "in use") {
		t.Errorf("second Serve on a live socket: got %v, want an error saying it is in use", err)
	}
}

func TestServeRejectsRegularFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "control.sock")
	os.WriteFile(path, []byte("data"), 0o600)
	err := NewServer(&agent{}, slog.New(slog.DiscardHandler)).Serve(context.Background(), path)
	if err == nil || !strings.Contains(err.Error(), "not a socket") {
		t.Errorf("Serve on a regular file: got %v, want an error saying it is not a socket", err)
	}
	if data, _ := os.ReadFile(path); string(data) != "data" {
		t.Errorf("regular file content after Serve: got %q, want it untouched", data)
	}
}

func TestClientCanceledContext(t *testing.T) {
	_, client := serve(t, &agent{dir: t.TempDir(), block: true})

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := client.Status(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Status with a canceled context: got %v, want context.Canceled", err)
	}

	ctx, cancel = context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, err := client.Status(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Status against a stuck handler: got %v, want context.DeadlineExceeded", err)
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("Status against a stuck handler returned after %v, want about 100 ms", elapsed)
	}
}

func TestServerTimesOutSlowClient(t *testing.T) {
	socket, _ := serve(t, &agent{dir: t.TempDir()}, func(s *Server) { s.RequestTimeout = 200 * time.Millisecond })
	conn, err := net.Dial("unix", socket)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.Write([]byte("GET /v1/status HTTP/1.1\r\nHost: control\r\n")); err != nil {
		t.Fatal(err)
	}

	start := time.Now()
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = io.ReadAll(conn)
	if err != nil {
		t.Errorf("reading after an unfinished request: got %v, want the server to close the connection", err)
	}
	if elapsed := time.Since(start); elapsed > 2*time.Second {
		t.Errorf("server closed the connection after %v, want about 200 ms", elapsed)
	}
}

func TestUpdate(t *testing.T) {
	a := &agent{dir: t.TempDir()}
	socket, client := serve(t, a)
	if err := client.Update(context.Background()); err != nil {
		t.Fatalf("Update: %v", err)
	}
	if a.updates != 1 {
		t.Errorf("updates started: got %d, want 1", a.updates)
	}

	a.busy = true
	err := client.Update(context.Background())
	var apiErr *Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusConflict || apiErr.Code != CodeBusy {
		t.Errorf("Update while busy: got %v, want *Error 409 %s", err, CodeBusy)
	}
	if apiErr != nil && strings.Contains(apiErr.Message, "1.2.3") {
		t.Errorf("busy message %q contains the handler's error text, want a generic message", apiErr.Message)
	}

	code, _, _ := raw(t, socket, http.MethodPost, PathUpdate, `{"now":true}`)
	if code != http.StatusBadRequest {
		t.Errorf("POST %s with a body: got %d, want 400", PathUpdate, code)
	}
}

func TestCertificateEvent(t *testing.T) {
	svc := &services{}
	_, client := serve(t, svc)
	event := CertificateEvent{
		Names:    []string{"example.org", "mail.example.org"},
		CertFile: "/perm/heimwolke/tls/cert.pem",
		KeyFile:  "/perm/heimwolke/tls/key.pem",
		NotAfter: time.Date(2026, 9, 1, 0, 0, 0, 0, time.UTC),
	}
	if err := client.CertificateChanged(context.Background(), event); err != nil {
		t.Fatalf("CertificateChanged: %v", err)
	}
	if len(svc.events) != 1 || !reflect.DeepEqual(svc.events[0], event) {
		t.Errorf("events received: got %+v, want [%+v]", svc.events, event)
	}

	event.CertFile = "cert.pem"
	err := client.CertificateChanged(context.Background(), event)
	var apiErr *Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusUnprocessableEntity || len(apiErr.Problems) != 1 || apiErr.Problems[0].Field != "cert_file" {
		t.Errorf("CertificateChanged with a relative path: got %v, want 422 naming cert_file", err)
	}
}

func TestEndpointOfOtherProgram(t *testing.T) {
	_, client := serve(t, &agent{dir: t.TempDir()})
	err := client.CertificateChanged(context.Background(), CertificateEvent{})
	var apiErr *Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusNotFound || apiErr.Code != CodeNotFound {
		t.Errorf("certificate event to the agent: got %v, want *Error 404 %s", err, CodeNotFound)
	}
}

func TestMethodNotAllowed(t *testing.T) {
	socket, _ := serve(t, &agent{dir: t.TempDir()})
	code, header, data := raw(t, socket, http.MethodPost, PathStatus, "")
	if code != http.StatusMethodNotAllowed || header.Get("Allow") != http.MethodGet {
		t.Errorf("POST %s: got %d Allow %q, want 405 Allow GET", PathStatus, code, header.Get("Allow"))
	}
	if e := decodeError(t, data); e.Code != CodeMethodNotAllowed {
		t.Errorf("error code: got %q, want %q", e.Code, CodeMethodNotAllowed)
	}
}

func TestHandlerErrorHidden(t *testing.T) {
	_, client := serve(t, &agent{dir: t.TempDir(), statusErr: errors.New("open /perm/secret: permission denied")})
	_, err := client.Status(context.Background())
	var apiErr *Error
	if !errors.As(err, &apiErr) || apiErr.StatusCode != http.StatusInternalServerError {
		t.Fatalf("Status with a failing handler: got %v, want *Error 500", err)
	}
	if strings.Contains(apiErr.Message, "secret") {
		t.Errorf("error message %q contains the handler's error text, want a generic message", apiErr.Message)
	}
}
