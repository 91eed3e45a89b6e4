package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"time"
)

// Handler serves GET /v1/status. A Handler that also implements
// SettingsHandler, CertificateHandler or UpdateHandler serves that endpoint
// too; the others reply 404 Not Found.
//
// A handler's error reaches the client as follows: an *Error as it is, a
// *ValidationError as 422, ErrBusy as 409, and anything else as 500 with a
// generic message while the server logs the error itself.
type Handler interface {
	Status(ctx context.Context) (Status, error)
}

// SettingsHandler serves PUT /v1/settings with settings that DecodeSettings
// accepted. The agent implements it and stores them with SaveSettings.
type SettingsHandler interface {
	PutSettings(ctx context.Context, s Settings) error
}

// SettingsReader serves GET /v1/settings with the settings last stored,
// secrets included, for heimwolke's services (the mail relay's login, the
// domain). It returns ErrNoSettings before the wizard sent any. The socket is
// the owner's alone, which keeps the secrets on the box.
type SettingsReader interface {
	GetSettings(ctx context.Context) (Settings, error)
}

// ErrNoSettings is what a SettingsReader returns before the setup; the
// server replies 404 Not Found with CodeNoSettings.
var ErrNoSettings = errors.New("no settings yet: the setup wizard has not sent any")

// RecordsHandler serves PUT /v1/records with validated records. The agent
// implements it.
type RecordsHandler interface {
	PutRecords(ctx context.Context, r ServiceRecords) error
}

// CertificateHandler serves POST /v1/events/certificate with a validated
// event. heimwolke implements it.
type CertificateHandler interface {
	CertificateChanged(ctx context.Context, e CertificateEvent) error
}

// UpdateHandler serves POST /v1/update. Update starts an update and returns
// without waiting for it; ErrBusy means that one is running already. The
// agent implements it.
type UpdateHandler interface {
	Update(ctx context.Context) error
}

// DefaultRequestTimeout is how long a client may take to send a whole
// request when Server.RequestTimeout is zero.
const DefaultRequestTimeout = 10 * time.Second

// Server serves the control API for a Handler on a Unix socket.
type Server struct {
	// RequestTimeout bounds how long a client may take to send a request's
	// headers and body; zero means DefaultRequestTimeout. Set it before
	// Serve.
	RequestTimeout time.Duration

	handler Handler
	log     *slog.Logger
	routes  map[string]route
	nextID  atomic.Uint64
}

type route struct {
	methods []string
	serve   func(w http.ResponseWriter, r *http.Request, id uint64)
}

// NewServer returns a server for handler. A nil log means slog.Default().
func NewServer(handler Handler, log *slog.Logger) *Server {
	if log == nil {
		log = slog.Default()
	}
	s := &Server{handler: handler, log: log}
	s.routes = map[string]route{
		PathStatus: {[]string{http.MethodGet}, s.serveStatus},
	}
	var settings []string
	if _, ok := handler.(SettingsReader); ok {
		settings = append(settings, http.MethodGet)
	}
	if _, ok := handler.(SettingsHandler); ok {
		settings = append(settings, http.MethodPut)
	}
	if settings != nil {
		s.routes[PathSettings] = route{settings, s.serveSettings}
	}
	if _, ok := handler.(RecordsHandler); ok {
		s.routes[PathRecords] = route{[]string{http.MethodPut}, s.serveRecords}
	}
	if _, ok := handler.(CertificateHandler); ok {
		s.routes[PathCertificateEvent] = route{[]string{http.MethodPost}, s.serveCertificateEvent}
	}
	if _, ok := handler.(UpdateHandler); ok {
		s.routes[PathUpdate] = route{[]string{http.MethodPost}, s.serveUpdate}
	}
	return s
}

// Serve listens on socketPath and serves until ctx is canceled, then shuts
// down, waiting up to 5 seconds for running requests. It creates the
// socket's folder with mode 0700 when missing, replaces a stale socket file
// that no server listens on, and gives the socket mode 0600. It returns nil
// after ctx is canceled.
func (s *Server) Serve(ctx context.Context, socketPath string) error {
	ln, err := listen(socketPath)
	if err != nil {
		return err
	}

	timeout := s.RequestTimeout
	if timeout <= 0 {
		timeout = DefaultRequestTimeout
	}
	srv := &http.Server{
		Handler:           s,
		ReadHeaderTimeout: timeout,
		ReadTimeout:       timeout,
		WriteTimeout:      timeout + 30*time.Second,
		IdleTimeout:       time.Minute,
		MaxHeaderBytes:    16 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.log.Info("control API listening", "socket", socketPath)

	select {
	case err := <-errc:
		return fmt.Errorf("serving control API on %s: %w", socketPath, err)
	case <-ctx.Done():
	}
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(shutdownCtx); err != nil {
		return fmt.Errorf("shutting down control API on %s: %w", socketPath, err)
	}
	s.log.Info("control API stopped", "socket", socketPath)
	return nil
}

// listen creates the Unix socket at path with mode 0600.
func listen(path string) (net.Listener, error) {
	// An existing folder keeps its mode: both programs share it.
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("creating control socket folder: %w", err)
	}
	if err := removeStale(path); err != nil {
		return nil, err
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listening on control socket: %w", err)
	}
	// Until this chmod the socket has the umask's mode; the folder's mode
	// 0700 keeps other users out of it meanwhile.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("restricting control socket %s to mode 0600: %w", path, err)
	}
	return ln, nil
}

// removeStale removes a socket file at path that no server accepts
// connections on, as a crashed process leaves behind.
func removeStale(path string) error {
	info, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("checking control socket path: %w", err)
	}
	if info.Mode().Type() != fs.ModeSocket {
		return fmt.Errorf("control socket path %s exists and is not a socket: remove it or choose another path", path)
	}
	conn, err := net.DialTimeout("unix", path, time.Second)
	if err == nil {
		conn.Close()
		return fmt.Errorf("control socket %s is in use by a running server: stop that server first", path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("removing stale control socket: %w", err)
	}
	return nil
}

// ServeHTTP routes a request and limits its body to MaxBodyBytes.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	id := s.nextID.Add(1)
	s.log.Debug("control request", "request_id", id, "method", r.Method, "path", r.URL.Path)

	rt, ok := s.routes[r.URL.Path]
	if !ok {
		s.writeError(w, id, &Error{StatusCode: http.StatusNotFound, Code: CodeNotFound, Message: "no endpoint " + r.URL.Path + " on this socket"})
		return
	}
	if !slices.Contains(rt.methods, r.Method) {
		allow := strings.Join(rt.methods, ", ")
		w.Header().Set("Allow", allow)
		s.writeError(w, id, &Error{StatusCode: http.StatusMethodNotAllowed, Code: CodeMethodNotAllowed, Message: r.URL.Path + " takes " + allow})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
	rt.serve(w, r, id)
}

func (s *Server) serveStatus(w http.ResponseWriter, r *http.Request, id uint64) {
	status, err := s.handler.Status(r.Context())
	if err != nil {
		s.writeHandlerError(w, id, err)
		return
	}
	writeJSON(w, http.StatusOK, status)
}

func (s *Server) serveSettings(w http.ResponseWriter, r *http.Request, id uint64) {
	if r.Method == http.MethodGet {
		settings, err := s.handler.(SettingsReader).GetSettings(r.Context())
		if errors.Is(err, ErrNoSettings) {
			err = &Error{StatusCode: http.StatusNotFound, Code: CodeNoSettings, Message: err.Error()}
		}
		if err != nil {
			s.writeHandlerError(w, id, err)
			return
		}
		writeJSON(w, http.StatusOK, settings)
		return
	}
	body, ok := s.readBody(w, r, id)
	if !ok {
		return
	}
	settings, err := DecodeSettings(body)
	if err != nil {
		s.writeError(w, id, decodeFailure(err))
		return
	}
	if err := s.handler.(SettingsHandler).PutSettings(r.Context(), settings); err != nil {
		s.writeHandlerError(w, id, err)
		return
	}
	s.log.Info("settings stored", "request_id", id, "settings", settings)
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) serveCertificateEvent(w http.ResponseWriter, r *http.Request, id uint64) {
	body, ok := s.readBody(w, r, id)
	if !ok {
		return
	}
	var event CertificateEvent
	if err := decodeStrict(body, &event); err != nil {
		s.writeError(w, id, decodeFailure(err))
		return
	}
	if err := event.Validate(); err != nil {
		s.writeError(w, id, decodeFailure(err))
		return
	}
	if err := s.handler.(CertificateHandler).CertificateChanged(r.Context(), event); err != nil {
		s.writeHandlerError(w, id, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) serveRecords(w http.ResponseWriter, r *http.Request, id uint64) {
	body, ok := s.readBody(w, r, id)
	if !ok {
		return
	}
	var records ServiceRecords
	if err := decodeStrict(body, &records); err != nil {
		s.writeError(w, id, decodeFailure(err))
		return
	}
	if err := records.Validate(); err != nil {
		s.writeError(w, id, decodeFailure(err))
		return
	}
	if err := s.handler.(RecordsHandler).PutRecords(r.Context(), records); err != nil {
		s.writeHandlerError(w, id, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) serveUpdate(w http.ResponseWriter, r *http.Request, id uint64) {
	body, ok := s.readBody(w, r, id)
	if !ok {
		return
	}
	if len(body) > 0 {
		s.writeError(w, id, &Error{StatusCode: http.StatusBadRequest, Code: CodeBadRequest, Message: "send POST /v1/update with an empty body"})
		return
	}
	if err := s.handler.(UpdateHandler).Update(r.Context()); err != nil {
		s.writeHandlerError(w, id, err)
		return
	}
	s.log.Info("update requested", "request_id", id)
	w.WriteHeader(http.StatusAccepted)
}

// readBody reads the request body, or writes the error response and
// returns false.
func (s *Server) readBody(w http.ResponseWriter, r *http.Request, id uint64) ([]byte, bool) {
	body, err := io.ReadAll(r.Body)
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		s.writeError(w, id, &Error{StatusCode: http.StatusRequestEntityTooLarge, Code: CodeBodyTooLarge,
			Message: fmt.Sprintf("request body larger than %d bytes", MaxBodyBytes)})
		return nil, false
	case err != nil:
		s.log.Warn("reading control request body failed", "request_id", id, "err", err)
		s.writeError(w, id, &Error{StatusCode: http.StatusBadRequest, Code: CodeBadRequest, Message: "reading the request body failed"})
		return nil, false
	}
	return body, true
}

// decodeFailure turns an error of DecodeSettings, decodeStrict or Validate
// into the response that explains it.
func decodeFailure(err error) *Error {
	var fieldErr *FieldError
	var validation *ValidationError
	switch {
	case errors.Is(err, ErrUnsupportedSchema):
		return &Error{StatusCode: http.StatusBadRequest, Code: CodeUnsupportedSchema, Message: err.Error(), Field: "schema_version"}
	case errors.As(err, &fieldErr):
		return &Error{StatusCode: http.StatusBadRequest, Code: CodeBadJSON, Message: fieldErr.Error(), Field: fieldErr.Field}
	case errors.As(err, &validation):
		return &Error{StatusCode: http.StatusUnprocessableEntity, Code: CodeInvalid, Message: validation.Error(), Problems: validation.Problems}
	}
	return &Error{StatusCode: http.StatusBadRequest, Code: CodeBadRequest, Message: err.Error()}
}

// writeHandlerError maps a handler's error to a response. Unknown errors are
// logged and reach the client only as "internal error".
func (s *Server) writeHandlerError(w http.ResponseWriter, id uint64, err error) {
	var apiErr *Error
	var validation *ValidationError
	switch {
	case errors.As(err, &apiErr):
		s.writeError(w, id, apiErr)
	case errors.As(err, &validation):
		s.writeError(w, id, decodeFailure(validation))
	case errors.Is(err, ErrBusy):
		s.writeError(w, id, &Error{StatusCode: http.StatusConflict, Code: CodeBusy, Message: "busy with the same work; try again later"})
	default:
		s.log.Error("control handler failed", "request_id", id, "err", err)
		s.writeError(w, id, &Error{StatusCode: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error; see the program's log"})
	}
}

func (s *Server) writeError(w http.ResponseWriter, id uint64, e *Error) {
	if e.StatusCode < 400 || e.StatusCode > 599 {
		s.log.Error("control handler returned an Error without an error status", "request_id", id, "status", e.StatusCode, "code", e.Code)
		e = &Error{StatusCode: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error; see the program's log"}
	}
	s.log.Debug("control request failed", "request_id", id, "status", e.StatusCode, "code", e.Code, "field", e.Field)
	writeJSON(w, e.StatusCode, e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}
