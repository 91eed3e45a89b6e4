package control

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"
)

// Client calls the control API on a Unix socket. It is safe for concurrent
// use.
type Client struct {
	socketPath string
	http       *http.Client
}

// NewClient returns a client for the server on socketPath. Each call gives
// up after 30 seconds, or earlier when its context ends.
func NewClient(socketPath string) *Client {
	transport := &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", socketPath)
		},
		MaxIdleConns:    2,
		IdleConnTimeout: 30 * time.Second,
	}
	return &Client{socketPath: socketPath, http: &http.Client{Transport: transport, Timeout: 30 * time.Second}}
}

// Status returns the status of the program behind the socket.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var status Status
	err := c.do(ctx, http.MethodGet, PathStatus, nil, &status)
	return status, err
}

// PutSettings sends the wizard's settings to the agent, which stores them.
// SchemaVersion is set to SchemaVersion when it is zero.
func (c *Client) PutSettings(ctx context.Context, s Settings) error {
	if s.SchemaVersion == 0 {
		s.SchemaVersion = SchemaVersion
	}
	return c.do(ctx, http.MethodPut, PathSettings, s, nil)
}

// GetSettings returns the settings that the agent stored last. Before the
// setup it returns an *Error with Code CodeNoSettings.
func (c *Client) GetSettings(ctx context.Context) (Settings, error) {
	var s Settings
	err := c.do(ctx, http.MethodGet, PathSettings, nil, &s)
	return s, err
}

// PutRecords hands the agent the DNS records that the services need.
func (c *Client) PutRecords(ctx context.Context, r ServiceRecords) error {
	return c.do(ctx, http.MethodPut, PathRecords, r, nil)
}

// CertificateChanged notifies heimwolke that the agent wrote a new
// certificate.
func (c *Client) CertificateChanged(ctx context.Context, e CertificateEvent) error {
	return c.do(ctx, http.MethodPost, PathCertificateEvent, e, nil)
}

// Update requests an update from the agent now. It returns once the update
// has started. An *Error with code CodeBusy means that one is running.
func (c *Client) Update(ctx context.Context) error {
	return c.do(ctx, http.MethodPost, PathUpdate, nil, nil)
}

// do sends a request with body as JSON (none when nil) and decodes a
// successful response into out (ignored when nil). An error status becomes
// an *Error.
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	var reader io.Reader
	if body != nil {
		data, err := json.Marshal(body)
		if err != nil {
			return fmt.Errorf("control: encoding %s %s: %w", method, path, err)
		}
		reader = bytes.NewReader(data)
	}
	// The host is a placeholder: the transport always dials the socket.
	req, err := http.NewRequestWithContext(ctx, method, "http://heimwolke-control"+path, reader)
	if err != nil {
		return fmt.Errorf("control: %s %s: %w", method, path, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}

	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("control: %s %s via %s: %w", method, path, c.socketPath, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return fmt.Errorf("control: reading response to %s %s: %w", method, path, err)
	}

	if resp.StatusCode >= 400 {
		apiErr := &Error{}
		if json.Unmarshal(data, apiErr) != nil || apiErr.Code == "" {
			apiErr = &Error{Code: CodeInternal, Message: http.StatusText(resp.StatusCode)}
		}
		apiErr.StatusCode = resp.StatusCode
		return apiErr
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("control: decoding response to %s %s: %w", method, path, err)
	}
	return nil
}
