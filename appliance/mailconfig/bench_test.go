package mailconfig

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// Load of each run: benchRequests GET requests from benchWorkers
// keep-alive connections over loopback, with plain HTTP so that the
// numbers compare the servers and not the TLS library.
const (
	benchRequests = 20000
	benchWorkers  = 8
	benchPath     = "/mail/config-v1.1.xml?emailaddress=anna%40example.org"
	benchHost     = "autoconfig.example.org"
)

// BenchmarkAutoconfigVsNginx compares the handler, which builds the file
// per request, with nginx serving the same autoconfig file as a static
// file. The load generator runs in the test process on the same cores.
func BenchmarkAutoconfigVsNginx(b *testing.B) {
	h, err := New(Options{Domain: "example.org"})
	if err != nil {
		b.Fatal(err)
	}
	ours := httptest.NewServer(h)
	b.Cleanup(ours.Close)

	body := fetchBody(b, ours.URL+benchPath)
	nginxURL := startNginx(b, body)

	for b.Loop() {
		oursRate := requestRate(b, ours.URL+benchPath)
		nginxRate := requestRate(b, nginxURL+benchPath)
		b.ReportMetric(oursRate, "ours-req/s")
		b.ReportMetric(nginxRate, "nginx-req/s")
		b.ReportMetric(oursRate/nginxRate, "ours/nginx")
	}
}

func fetchBody(b *testing.B, url string) []byte {
	b.Helper()
	resp, err := get(http.DefaultClient, url)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		b.Fatalf("GET %s: status %d, error %v", url, resp.StatusCode, err)
	}
	return body
}

// startNginx serves body as /mail/config-v1.1.xml from nginx on a free
// loopback port and returns the server's base URL.
func startNginx(b *testing.B, body []byte) string {
	b.Helper()
	nginx := testpeer.Require(b, "nginx", "nginx")
	dir := b.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "www", "mail"), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "www", "mail", "config-v1.1.xml"), body, 0o644); err != nil {
		b.Fatal(err)
	}
	port := freePort(b)

	// Workers run as root when the test does, because b.TempDir is not
	// readable by nginx's default user.
	user := ""
	if os.Geteuid() == 0 {
		user = "user root;"
	}
	conf := fmt.Sprintf(`%[1]s
daemon off;
worker_processes auto;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log;
events { worker_connections 256; }
http {
	access_log off;
	client_body_temp_path %[2]s/client;
	proxy_temp_path %[2]s/proxy;
	fastcgi_temp_path %[2]s/fastcgi;
	uwsgi_temp_path %[2]s/uwsgi;
	scgi_temp_path %[2]s/scgi;
	types { application/xml xml; }
	server {
		listen 127.0.0.1:%[3]d;
		root %[2]s/www;
	}
}
`, user, dir, port)
	confFile := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confFile, []byte(conf), 0o644); err != nil {
		b.Fatal(err)
	}

	// nginx writes its errors to error.log in dir.
	cmd := exec.Command(nginx, "-c", confFile, "-e", filepath.Join(dir, "error.log"))
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { stopNginx(b, cmd) })

	url := fmt.Sprintf("http://127.0.0.1:%d", port)
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		resp, err := get(http.DefaultClient, url+benchPath)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return url
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("nginx did not serve %s within 10 s: %v", url+benchPath, err)
		}
	}
}

// stopNginx sends SIGTERM to the master, which stops its workers before
// it exits. SIGKILL would leave the workers running.
func stopNginx(b *testing.B, cmd *exec.Cmd) {
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		b.Logf("stopping nginx: %v", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		b.Errorf("nginx (pid %d) did not stop within 10 s of SIGTERM", cmd.Process.Pid)
	}
}

func freePort(b *testing.B) int {
	b.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// requestRate sends benchRequests GET requests to url and returns the
// requests per second.
func requestRate(b *testing.B, url string) float64 {
	b.Helper()
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: benchWorkers}}
	defer client.CloseIdleConnections()

	var wg sync.WaitGroup
	errs := make(chan error, benchWorkers)
	start := time.Now()
	for range benchWorkers {
		wg.Go(func() {
			for range benchRequests / benchWorkers {
				if err := getDiscard(client, url); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)

	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	return benchRequests / elapsed.Seconds()
}

// get requests url with the Host header of the autoconfig host.
func get(client *http.Client, url string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	req.Host = benchHost
	return client.Do(req)
}

func getDiscard(client *http.Client, url string) error {
	resp, err := get(client, url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: status %s, want 200", url, resp.Status)
	}
	return nil
}
