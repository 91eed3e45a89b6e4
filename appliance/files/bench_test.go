package files

import (
	"bufio"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/appliance/webui"
	"github.com/heimwolke/heimwolke/packages/accounts"
	"github.com/heimwolke/heimwolke/packages/sqlitedb"
	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// benchServerEnv makes the test binary serve WebDAV on a data folder
// instead of running tests, so that the benchmark measures the memory of
// a process that runs nothing but the handler.
const benchServerEnv = "HEIMWOLKE_FILES_BENCH_SERVER"

func TestMain(m *testing.M) {
	if dir := os.Getenv(benchServerEnv); dir != "" {
		if err := runBenchServer(dir); err != nil {
			fmt.Fprintln(os.Stderr, "bench server:", err)
			os.Exit(1)
		}
		return
	}
	os.Exit(m.Run())
}

// runBenchServer serves the WebDAV handler for the user "bench" on a free
// loopback port and prints the address and the app password.
func runBenchServer(dir string) error {
	ctx := context.Background()
	logger := slog.New(slog.DiscardHandler)
	store, err := accounts.Open(ctx, filepath.Join(dir, "accounts.db"), accounts.Options{
		Logger: logger, Argon2: accounts.Argon2Params{Memory: 64, Time: 1, Threads: 1},
	})
	if err != nil {
		return err
	}

	user, err := store.CreateOwner(ctx, accounts.NewUser{Name: "bench", Password: "correct horse battery bench", Language: accounts.LanguageEnglish})
	if err != nil {
		return err
	}
	secret, _, err := store.CreateAppPassword(ctx, user.ID, "bench", accounts.ScopeDAV)
	if err != nil {
		return err
	}

	db, err := sqlitedb.Open(ctx, filepath.Join(dir, "files.db"), 5*time.Second)
	if err != nil {
		return err
	}
	h, err := New(ctx, Options{DataDir: filepath.Join(dir, "data"), DB: db, Logger: logger})
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return err
	}
	fmt.Printf("%s %s\n", ln.Addr(), secret)
	auth := webui.BasicAuth(webui.BasicAuthOptions{Accounts: store, Scope: accounts.ScopeDAV, Protocol: "webdav", Logger: logger}, h)
	srv := &http.Server{Handler: auth, ReadHeaderTimeout: 10 * time.Second}
	return srv.Serve(ln)
}

// davServer is a running WebDAV server under measurement.
type davServer struct {
	name     string
	base     string // URL of the folder that the benchmark uses, with a trailing slash
	dataDir  string // that folder on disk
	user     string
	password string
	pid      int
}

func startOurs(b *testing.B) *davServer {
	b.Helper()
	dir := b.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), benchServerEnv+"="+dir)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		b.Fatalf("reading the bench server's address: %v", err)
	}
	addr, secret, _ := strings.Cut(strings.TrimSpace(line), " ")
	return &davServer{
		name:     "heimwolke",
		base:     "http://" + addr + HomePrefix + "bench/",
		dataDir:  filepath.Join(dir, "data", "home", "bench"),
		user:     "bench",
		password: secret,
		pid:      cmd.Process.Pid,
	}
}

// startNginx runs nginx with its DAV and dav-ext modules as one process
// (master_process off), so that its memory is one process's.
func startNginx(b *testing.B) *davServer {
	b.Helper()
	nginx := testpeer.Require(b, "nginx", "nginx")
	module := "/usr/lib/nginx/modules/ngx_http_dav_ext_module.so"
	if _, err := os.Stat(module); err != nil {
		testpeer.Require(b, "ngx_http_dav_ext_module", "libnginx-mod-http-dav-ext")
	}
	dir := b.TempDir()
	data := filepath.Join(dir, "data")
	if err := os.MkdirAll(data, 0o755); err != nil {
		b.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	conf := fmt.Sprintf(`load_module %s;
daemon off;
master_process off;
worker_processes 1;
pid %[2]s/nginx.pid;
error_log %[2]s/error.log;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path %[2]s/body;
  proxy_temp_path %[2]s/proxy;
  fastcgi_temp_path %[2]s/fastcgi;
  uwsgi_temp_path %[2]s/uwsgi;
  scgi_temp_path %[2]s/scgi;
  sendfile on;
  server {
    listen %[3]s;
    root %[4]s;
    client_max_body_size 0;
    location / {
      dav_methods PUT DELETE MKCOL COPY MOVE;
      dav_ext_methods PROPFIND OPTIONS;
      create_full_put_path on;
    }
  }
}
`, module, dir, addr, data)
	confPath := filepath.Join(dir, "nginx.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(nginx, "-c", confPath, "-e", filepath.Join(dir, "error.log"))
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for range 100 {
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	return &davServer{name: "nginx", base: "http://" + addr + "/", dataDir: data, pid: cmd.Process.Pid}
}

// rssSampler records the peak resident set size of a process, read from
// /proc/PID/status every 10 ms.
type rssSampler struct {
	stop chan struct{}
	done sync.WaitGroup
	peak int64 // KiB
}

func sampleRSS(pid int) *rssSampler {
	s := &rssSampler{stop: make(chan struct{})}
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		for {
			if kib := readRSS(pid); kib > s.peak {
				s.peak = kib
			}
			select {
			case <-s.stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
		}
	}()
	return s
}

// peakMiB stops sampling and returns the peak in MiB.
func (s *rssSampler) peakMiB() float64 {
	close(s.stop)
	s.done.Wait()
	return float64(s.peak) / 1024
}

func readRSS(pid int) int64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kib, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kib
		}
	}
	return 0
}

func (s *davServer) request(b *testing.B, method, name string, body io.Reader, size int64, header map[string]string) *http.Response {
	b.Helper()
	req, err := http.NewRequest(method, s.base+name, body)
	if err != nil {
		b.Fatal(err)
	}
	req.ContentLength = size
	if s.user != "" {
		req.SetBasicAuth(s.user, s.password)
	}
	for k, v := range header {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatalf("%s %s on %s: %v", method, name, s.name, err)
	}
	return resp
}

// measurement is one operation's time and the server's peak memory.
type measurement struct {
	seconds float64
	peakMiB float64
}

func measure(b *testing.B, s *davServer, op func()) measurement {
	b.Helper()
	sampler := sampleRSS(s.pid)
	start := time.Now()
	op()
	return measurement{seconds: time.Since(start).Seconds(), peakMiB: sampler.peakMiB()}
}

func report(b *testing.B, what string, ours, nginx measurement, unit string, amount float64) {
	b.Helper()
	b.ReportMetric(amount/ours.seconds, "heimwolke-"+what+"-"+unit)
	b.ReportMetric(amount/nginx.seconds, "nginx-"+what+"-"+unit)
	b.ReportMetric(nginx.seconds/ours.seconds, what+"-speed-ratio")
	b.ReportMetric(ours.peakMiB, "heimwolke-"+what+"-peak-RSS-MiB")
	b.ReportMetric(nginx.peakMiB, "nginx-"+what+"-peak-RSS-MiB")
}

// BenchmarkTransfer1GiB uploads and downloads a 1 GiB file to nginx's
// WebDAV module and to this package's handler, one after the other, over
// loopback HTTP. A speed ratio below 1 means slower than nginx.
func BenchmarkTransfer1GiB(b *testing.B) {
	const size = 1 << 30
	nginx := startNginx(b)
	ours := startOurs(b)
	src := filepath.Join(b.TempDir(), "big.bin")
	writeRandomFile(b, src, size)

	for range b.N {
		results := map[string][2]measurement{}
		for _, s := range []*davServer{nginx, ours} {
			up := measure(b, s, func() {
				f, err := os.Open(src)
				if err != nil {
					b.Fatal(err)
				}
				defer f.Close()
				resp := s.request(b, "PUT", "big.bin", f, size, nil)
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusNoContent {
					b.Fatalf("PUT on %s: status %d", s.name, resp.StatusCode)
				}
			})
			down := measure(b, s, func() {
				resp := s.request(b, "GET", "big.bin", nil, 0, nil)
				n, err := io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil || n != size {
					b.Fatalf("GET on %s: %d bytes, %v", s.name, n, err)
				}
			})
			results[s.name] = [2]measurement{up, down}
		}
		report(b, "upload", results["heimwolke"][0], results["nginx"][0], "MB/s", size/1e6)
		report(b, "download", results["heimwolke"][1], results["nginx"][1], "MB/s", size/1e6)
	}
}

// BenchmarkPropfind10000 lists a folder of 10,000 files with PROPFIND
// Depth 1 (allprop) on both servers; the files are created on disk.
func BenchmarkPropfind10000(b *testing.B) {
	nginx := startNginx(b)
	ours := startOurs(b)
	for _, s := range []*davServer{nginx, ours} {
		// Create the folder through the server, so that its owner and
		// mode are the server's own, then fill it on disk.
		resp := s.request(b, "MKCOL", "many/", nil, 0, nil)
		resp.Body.Close()
		for i := range 10000 {
			name := filepath.Join(s.dataDir, "many", fmt.Sprintf("datei-%05d.txt", i))
			if err := os.WriteFile(name, []byte("x"), 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}

	for range b.N {
		results := map[string]measurement{}
		for _, s := range []*davServer{nginx, ours} {
			// The best of five, so that the first run's cold caches
			// do not decide.
			for range 5 {
				m := measure(b, s, func() {
					resp := s.request(b, "PROPFIND", "many/", nil, 0, map[string]string{"Depth": "1"})
					n, _ := io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
					if resp.StatusCode != http.StatusMultiStatus || n < 10000*100 {
						b.Fatalf("PROPFIND on %s: status %d, %d bytes", s.name, resp.StatusCode, n)
					}
				})
				best, ok := results[s.name]
				if !ok || m.seconds < best.seconds {
					best.seconds = m.seconds
				}
				best.peakMiB = max(best.peakMiB, m.peakMiB)
				results[s.name] = best
			}
		}
		report(b, "propfind", results["heimwolke"], results["nginx"], "per-s", 1)
	}
}

func writeRandomFile(b *testing.B, name string, size int64) {
	b.Helper()
	f, err := os.Create(name)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 1<<20)
	rand.Read(buf)
	for written := int64(0); written < size; written += int64(len(buf)) {
		// Vary each MiB a little, so that no layer can deduplicate.
		buf[0], buf[1] = byte(written>>20), byte(written>>28)
		if _, err := f.Write(buf); err != nil {
			b.Fatal(err)
		}
	}
}
