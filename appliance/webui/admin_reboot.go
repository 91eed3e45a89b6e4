package webui

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"
)

// Rebooter restarts the box.
type Rebooter interface {
	// Available reports whether Reboot can work here. It is false on a PC,
	// which runs heimwolke without gokrazy.
	Available() bool

	// Reboot starts a restart and returns without waiting for it. Every
	// program on the box, this one included, receives SIGTERM soon after.
	Reboot(ctx context.Context) error
}

// GokrazySocket is the Unix socket of gokrazy's HTTP API on the box. Without
// a gokr-pw.txt in the image, gokrazy serves its API only there.
const GokrazySocket = "/run/gokrazy-http.sock"

// DefaultRebootWait is how long GokrazyRebooter.Reboot waits for gokrazy
// to reject the request when GokrazyRebooter.Wait is zero.
const DefaultRebootWait = 2 * time.Second

// GokrazyRebooter restarts the box through gokrazy's POST /reboot.
//
// gokrazy (github.com/gokrazy/gokrazy v0.0.0-20260418085648, update.go)
// handles that request by sending SIGTERM to every supervised program,
// waiting until they have stopped (SIGKILL after 100 s), unmounting /perm
// and only then replying and rebooting. The reply therefore never reaches
// heimwolke, which is one of those programs. Reboot does not send
// async=true, because gokrazy would then reboot after one second whether or
// not the programs had stopped. Unlike /stop and /restart, /reboot checks
// no XSRF token.
type GokrazyRebooter struct {
	// SocketPath is gokrazy's socket, normally GokrazySocket.
	SocketPath string

	// Wait is how long Reboot waits for an error reply before it takes
	// the reboot as started. Zero means DefaultRebootWait.
	Wait time.Duration

	// Logger receives the reply that comes after Reboot has returned. Nil
	// means slog.Default().
	Logger *slog.Logger
}

// Available reports whether gokrazy's socket exists.
func (g *GokrazyRebooter) Available() bool {
	info, err := os.Stat(g.SocketPath)
	return err == nil && info.Mode().Type() == fs.ModeSocket
}

// Reboot sends POST /reboot to gokrazy. It returns an error when gokrazy
// cannot be reached or replies with an error within Wait, and nil when the
// request is still running after Wait, because gokrazy is then stopping
// the programs.
func (g *GokrazyRebooter) Reboot(ctx context.Context) error {
	wait := g.Wait
	if wait <= 0 {
		wait = DefaultRebootWait
	}
	client := &http.Client{Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", g.SocketPath)
		},
		DisableKeepAlives: true, // one request per client
	}}
	// The request outlives the handler that called Reboot, and gokrazy
	// takes up to 200 s to stop the programs before it replies.
	reqCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Minute)
	// The host is a placeholder: the transport always dials the socket.
	req, err := http.NewRequestWithContext(reqCtx, http.MethodPost, "http://gokrazy/reboot", strings.NewReader(""))
	if err != nil {
		cancel()
		return fmt.Errorf("requesting reboot: %w", err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")

	result := make(chan error, 1)
	go func() {
		defer cancel()
		result <- g.post(client, req)
	}()
	select {
	case err := <-result:
		// A quick 200 OK comes only from a gokrazy that does not
		// supervise this process; it reboots all the same.
		return err
	case <-time.After(wait):
	}
	go g.logLateReply(result)
	return nil
}

func (g *GokrazyRebooter) post(client *http.Client, req *http.Request) error {
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("requesting reboot from gokrazy at %s: %w", g.SocketPath, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("requesting reboot from gokrazy at %s: %s: %s", g.SocketPath, resp.Status, strings.TrimSpace(string(body)))
	}
	return nil
}

// logLateReply logs the outcome of a reboot request that Reboot no longer
// waits for. Normally this process ends before the reply comes.
func (g *GokrazyRebooter) logLateReply(result <-chan error) {
	log := g.Logger
	if log == nil {
		log = slog.Default()
	}
	if err := <-result; err != nil {
		log.Error("reboot request failed", "err", err)
		return
	}
	log.Info("gokrazy accepted the reboot")
}

// reboot shows the confirmation page first. After the confirmation, it
// restarts the box.
func (a *adminPages) reboot(w http.ResponseWriter, r *http.Request) {
	v := a.requireOwner(w, r)
	if v == nil {
		return
	}
	if !a.rebooter.Available() {
		a.renderMessage(w, v, http.StatusNotImplemented, "admin.reboot.title", "admin.reboot.unavailable", "/admin")
		return
	}
	if !confirmed(r) {
		a.renderConfirm(w, v, "admin.reboot.title", a.t(v.lang, "admin.reboot.confirm"), "/admin/reboot", "admin.reboot.confirm_button", "/admin")
		return
	}

	a.log.Info("reboot requested", "user", v.session.User.Name, "source", v.source)
	if err := a.rebooter.Reboot(r.Context()); err != nil {
		a.log.Error("reboot failed", "user", v.session.User.Name, "err", err)
		a.renderMessage(w, v, http.StatusBadGateway, "admin.reboot.title", "admin.reboot.failed", "/admin")
		return
	}
	a.renderMessage(w, v, http.StatusOK, "admin.reboot.started.title", "admin.reboot.started", "")
}
