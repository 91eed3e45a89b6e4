package tlsstore

import (
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// benchHandshakes is the number of full TLS handshakes per server and
// benchWorkers the number of clients that make them at once.
const (
	benchHandshakes = 2000
	benchWorkers    = 4
)

// BenchmarkHandshake compares full TLS 1.3 handshakes per second, each
// followed by one HTTP request, between a Go server whose certificates come
// from the store's GetCertificate (with its once-a-second file check) and
// nginx serving the same ECDSA P-256 certificate and key files.
func BenchmarkHandshake(b *testing.B) {
	nginx := testpeer.Require(b, "nginx", "nginx")
	store, err := Open(filepath.Join(b.TempDir(), "tls"))
	if err != nil {
		b.Fatal(err)
	}
	chain, key := selfSigned(b, 10, "heimwolke.test")
	if err := store.WriteCertificate("acme", chain, key); err != nil {
		b.Fatal(err)
	}

	ln, err := tls.Listen("tcp", "127.0.0.1:0", store.TLSConfig())
	if err != nil {
		b.Fatal(err)
	}
	server := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "hello")
	}), ErrorLog: nil}
	go server.Serve(ln)
	b.Cleanup(func() { server.Close() })
	ours := ln.Addr().String()

	theirs := startNginx(b, nginx, store.CertFile("acme"), store.KeyFile("acme"))

	for i := 0; i < b.N; i++ {
		ourRate := handshakeRate(b, ours)
		nginxRate := handshakeRate(b, theirs)
		b.ReportMetric(ourRate, "tlsstore_handshakes/s")
		b.ReportMetric(nginxRate, "nginx_handshakes/s")
		b.ReportMetric(ourRate/nginxRate, "ratio")
	}
}

// handshakeRate makes benchHandshakes new connections to addr, each with a
// full handshake and one GET, and returns how many it made per second.
func handshakeRate(b *testing.B, addr string) float64 {
	b.Helper()
	config := &tls.Config{ServerName: "heimwolke.test", InsecureSkipVerify: true, MinVersion: tls.VersionTLS13}
	request := []byte("GET / HTTP/1.1\r\nHost: heimwolke.test\r\nConnection: close\r\n\r\n")

	var wg sync.WaitGroup
	errs := make(chan error, benchWorkers)
	start := time.Now()
	for range benchWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range benchHandshakes / benchWorkers {
				conn, err := tls.Dial("tcp", addr, config)
				if err != nil {
					errs <- err
					return
				}
				conn.Write(request)
				io.Copy(io.Discard, conn)
				conn.Close()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	close(errs)
	if err := <-errs; err != nil {
		b.Fatalf("handshake with %s: %v", addr, err)
	}
	return float64(benchHandshakes) / elapsed.Seconds()
}

// startNginx runs nginx with one worker process on a free port with the
// given certificate and key, and returns its address.
func startNginx(b *testing.B, nginx, certFile, keyFile string) string {
	b.Helper()
	dir := b.TempDir()
	probe, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := probe.Addr().String()
	probe.Close()

	conf := fmt.Sprintf(`daemon off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 256; }
http {
	access_log off;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	server {
		listen %[2]s ssl;
		ssl_certificate %[3]s;
		ssl_certificate_key %[4]s;
		ssl_protocols TLSv1.3;
		ssl_session_tickets off;
		location / { return 200 "hello"; }
	}
}
`, dir, addr, certFile, keyFile)
	confFile := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o600); err != nil {
		b.Fatal(err)
	}

	cmd := exec.Command(nginx, "-c", confFile, "-p", dir, "-e", filepath.Join(dir, "error.log"))
	if err := cmd.Start(); err != nil {
		b.Fatalf("starting nginx: %v", err)
	}
	b.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})

	deadline := time.Now().Add(10 * time.Second)
	for {
		conn, err := net.Dial("tcp", addr)
		if err == nil {
			conn.Close()
			return addr
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(dir, "error.log"))
			b.Fatalf("nginx did not listen on %s within 10s: %s", addr, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
