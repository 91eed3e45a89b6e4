package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/appliance/mail/aliases"
	"github.com/heimwolke/heimwolke/packages/accounts"
	"github.com/heimwolke/heimwolke/packages/control"
	"github.com/heimwolke/heimwolke/packages/sqlitedb"
	"github.com/heimwolke/heimwolke/packages/testpeer"
	"github.com/heimwolke/heimwolke/packages/tlsstore"
)

// freeAddr returns a loopback address with a port that is free now.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// writeTestCertificate puts a self-signed certificate for localhost into
// the TLS store at dir and returns its PEM file for curl's --cacert.
func writeTestCertificate(t *testing.T, dir string) string {
	t.Helper()
	return writeTestCertificateSerial(t, dir, 1)
}

// writeTestCertificateSerial is writeTestCertificate with a serial number,
// so that a test can tell a renewed certificate from the first.
func writeTestCertificateSerial(t *testing.T, dir string, serial int64) string {
	t.Helper()
	cert := testpeer.SelfSignedWith(t, testpeer.CertOptions{Serial: serial}, "localhost")
	store, err := tlsstore.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := store.WriteCertificate("local", cert.CertPEM, cert.KeyPEM); err != nil {
		t.Fatal(err)
	}
	if err := store.SetDefault("local"); err != nil {
		t.Fatal(err)
	}

	caFile, _ := cert.WriteFiles(t, t.TempDir(), "localhost")
	return caFile
}

// testBox is a data folder with the owner anna, her app password and a
// certificate for localhost, for a heimwolke started by the test.
type testBox struct {
	dir, dataDir string
	secret       string // anna's app password
	caFile       string // the certificate, for curl's --cacert
}

func newTestBox(t *testing.T, scope accounts.Scope) *testBox {
	t.Helper()
	ctx := context.Background()
	b := &testBox{dir: t.TempDir()}
	b.dataDir = filepath.Join(b.dir, "data")
	if err := os.MkdirAll(b.dataDir, 0o700); err != nil {
		t.Fatal(err)
	}
	store, err := accounts.Open(ctx, filepath.Join(b.dataDir, "heimwolke.db"), accounts.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	owner, err := store.CreateOwner(ctx, accounts.NewUser{Name: "anna", Language: accounts.LanguageGerman, Password: "Kastanienbaum-2026"})
	if err != nil {
		t.Fatal(err)
	}
	if b.secret, _, err = store.CreateAppPassword(ctx, owner.ID, "laptop", scope); err != nil {
		t.Fatal(err)
	}
	b.caFile = writeTestCertificate(t, filepath.Join(b.dataDir, "tls"))
	return b
}

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binPath != "" {
		os.RemoveAll(filepath.Dir(binPath))
	}
	os.Exit(code)
}

// heimwolkeBinary builds the program once per test run.
func heimwolkeBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "heimwolke-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "heimwolke")
		if out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// start runs cmd until the test ends and logs its output if the test
// failed.
func start(t *testing.T, cmd *exec.Cmd) *testpeer.Buffer {
	t.Helper()
	logs := &testpeer.Buffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
		if t.Failed() {
			t.Logf("heimwolke's log:\n%s", logs.String())
		}
	})
	return logs
}

// TestServicesOnHTTPS builds heimwolke, starts it on loopback ports with a
// member and an app password in its database, and checks with curl that
// WebDAV, CalDAV and CardDAV respond on HTTPS behind Basic auth, and that
// IMAP responds with implicit TLS.
func TestServicesOnHTTPS(t *testing.T) {
	curl := testpeer.Require(t, "curl", "curl")
	b := newTestBox(t, accounts.ScopeDAV|accounts.ScopeMail)
	dir, dataDir, secret, caFile := b.dir, b.dataDir, b.secret, b.caFile
	httpsAddr, imapsAddr := freeAddr(t), freeAddr(t)
	// Without an agent there are no settings, so SMTP stays off; its
	// addresses are loopback ones all the same.
	start(t, exec.Command(heimwolkeBinary(t), "--http", freeAddr(t), "--https", httpsAddr, "--data", dataDir,
		"--imaps", imapsAddr, "--smtp", freeAddr(t), "--submission", freeAddr(t), "--submissions", freeAddr(t),
		"--agent-socket", filepath.Join(dir, "no-agent.sock")))

	_, port, _ := net.SplitHostPort(httpsAddr)
	base := "https://localhost:" + port
	request := func(user string, args ...string) string {
		t.Helper()
		argv := []string{"-sS", "--cacert", caFile, "--resolve", "localhost:" + port + ":127.0.0.1",
			"-o", "/dev/null", "-w", "%{http_code}"}
		if user != "" {
			argv = append(argv, "-u", user)
		}
		out, err := exec.Command(curl, append(argv, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("curl %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		conn, err := net.Dial("tcp", httpsAddr)
		if err == nil {
			conn.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("heimwolke does not listen on %s after 30 s", httpsAddr)
		}
		time.Sleep(100 * time.Millisecond)
	}

	login := "anna:" + secret
	body := filepath.Join(dir, "hello.txt")
	if err := os.WriteFile(body, []byte("Grüße aus der Heimwolke\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, user string
		args       []string
		want       string
	}{
		{"files without login", "", []string{"-X", "PROPFIND", "-H", "Depth: 0", base + "/dav/files/anna/"}, "401"},
		{"files with a wrong password", "anna:wrong", []string{"-X", "PROPFIND", "-H", "Depth: 0", base + "/dav/files/anna/"}, "401"},
		{"files folder", login, []string{"-X", "PROPFIND", "-H", "Depth: 1", base + "/dav/files/anna/"}, "207"},
		{"file upload", login, []string{"-T", body, base + "/dav/files/anna/hello.txt"}, "201"},
		{"file download", login, []string{base + "/dav/files/anna/hello.txt"}, "200"},
		{"shared folder", login, []string{"-X", "PROPFIND", "-H", "Depth: 1", base + "/dav/shared/"}, "207"},
		{"calendar home", login, []string{"-X", "PROPFIND", "-H", "Depth: 1", base + "/dav/calendars/anna/"}, "207"},
		{"address book home", login, []string{"-X", "PROPFIND", "-H", "Depth: 1", base + "/dav/addressbooks/anna/"}, "207"},
		{"caldav discovery", "", []string{base + "/.well-known/caldav"}, "301"},
		{"web interface", "", []string{base + "/healthz"}, "200"},
	} {
		if got := request(c.user, c.args...); got != c.want {
			t.Errorf("%s: status %s, want %s", c.name, got, c.want)
		}
	}

	// An HTML file opened at its DAV address must not run on the web
	// interface's origin.
	page := filepath.Join(dir, "page.html")
	if err := os.WriteFile(page, []byte("<script>alert(1)</script>"), 0o600); err != nil {
		t.Fatal(err)
	}
	if got := request(login, "-T", page, base+"/dav/files/anna/page.html"); got != "201" {
		t.Fatalf("HTML upload: status %s, want 201", got)
	}
	headers, err := exec.Command(curl, "-sS", "--cacert", caFile, "--resolve", "localhost:"+port+":127.0.0.1",
		"-u", login, "-D", "-", "-o", "/dev/null", base+"/dav/files/anna/page.html").CombinedOutput()
	if err != nil {
		t.Fatalf("curl GET page.html: %v\n%s", err, headers)
	}
	if !strings.Contains(strings.ToLower(string(headers)), "content-security-policy: sandbox;") {
		t.Errorf("GET of an HTML file over DAV lacks the CSP sandbox:\n%s", headers)
	}

	// curl speaks IMAP too: listing the mailboxes shows the standard
	// folders that the store makes for every user.
	_, imapPort, _ := net.SplitHostPort(imapsAddr)
	out, err := exec.Command(curl, "-sS", "--cacert", caFile, "--resolve", "localhost:"+imapPort+":127.0.0.1",
		"-u", login, "imaps://localhost:"+imapPort+"/").CombinedOutput()
	if err != nil {
		t.Fatalf("curl imaps LIST: %v\n%s", err, out)
	}
	for _, folder := range []string{"INBOX", "Sent", "Trash"} {
		if !strings.Contains(string(out), folder) {
			t.Errorf("IMAP LIST lacks %s:\n%s", folder, out)
		}
	}
}

// settingsAgent replaces heimwolke-agent on the control socket. It serves
// fixed settings, as the agent does after the setup, and keeps the DNS
// records that heimwolke hands it.
type settingsAgent struct {
	settings control.Settings
	records  chan control.ServiceRecords
}

func (a settingsAgent) PutRecords(_ context.Context, r control.ServiceRecords) error {
	select {
	case a.records <- r:
	default:
	}
	return nil
}

func (a settingsAgent) Status(context.Context) (control.Status, error) {
	return control.Status{Program: "heimwolke-agent"}, nil
}

func (a settingsAgent) GetSettings(context.Context) (control.Settings, error) {
	return a.settings, nil
}

// TestMailFromAgentSettings starts heimwolke with an agent whose settings
// turn mail on for familie.test, delivers a message with swaks to an alias
// of anna's on the SMTP port, and reads it back over IMAP with curl. heimwolke runs in its
// own mount namespace with a resolv.conf that points at loopback, so the
// SPF and DMARC lookups for the sender never leave the machine.
func TestMailFromAgentSettings(t *testing.T) {
	curl := testpeer.Require(t, "curl", "curl")
	testpeer.Require(t, "swaks", "swaks")
	unshare := testpeer.Require(t, "unshare", "util-linux")
	testpeer.RequireRoot(t, "mounting a private resolv.conf for heimwolke")
	ctx := context.Background()
	b := newTestBox(t, accounts.ScopeMail)
	dir, dataDir, secret, caFile := b.dir, b.dataDir, b.secret, b.caFile

	socket := filepath.Join(dir, "agent.sock")
	agentCtx, stopAgent := context.WithCancel(ctx)
	t.Cleanup(stopAgent)
	agent := settingsAgent{settings: control.Settings{
		SchemaVersion: control.SchemaVersion,
		Domain:        "familie.test",
		Services:      control.ServiceSettings{Mail: true, CalendarContacts: true},
	}, records: make(chan control.ServiceRecords, 1)}
	go control.NewServer(agent, nil).Serve(agentCtx, socket)

	bin := heimwolkeBinary(t)
	resolv := filepath.Join(dir, "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver 127.0.0.1\noptions attempts:1 timeout:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	smtpAddr, imapsAddr, httpsAddr := freeAddr(t), freeAddr(t), freeAddr(t)
	argv := strings.Join([]string{bin, "--http", freeAddr(t), "--https", httpsAddr, "--data", dataDir,
		"--smtp", smtpAddr, "--submission", "''", "--submissions", "''", "--imaps", imapsAddr,
		"--agent-socket", socket}, " ")
	logs := start(t, exec.Command(unshare, "--mount", "--propagation", "private", "sh", "-c",
		"mount --bind "+resolv+" /etc/resolv.conf && exec "+argv))
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(logs.String(), "mode=smtp") {
		if time.Now().After(deadline) {
			t.Fatalf("heimwolke did not start SMTP within 30 s of reading the agent's settings")
		}
		time.Sleep(100 * time.Millisecond)
	}

	// An alias that the owner adds on /admin/mail, stored while heimwolke
	// runs, takes effect without a restart.
	db, err := sqlitedb.Open(ctx, filepath.Join(dataDir, "heimwolke.db"), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	al, err := aliases.Open(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	users, err := accounts.Open(ctx, filepath.Join(dataDir, "heimwolke.db"), accounts.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer users.Close()
	if err := al.Directory([]string{"familie.test"}, users).Add(ctx, "info@familie.test", "anna"); err != nil {
		t.Fatal(err)
	}

	host, port, _ := net.SplitHostPort(smtpAddr)
	transcript, code := testpeer.Swaks(t, "--server", host, "--port", port, "--tls",
		"--from", "bob@example.org", "--to", "info@familie.test",
		"--header", "Subject: Grillabend am Samstag", "--body", "Bringst Du Salat mit?")
	if code != 0 {
		t.Fatalf("swaks exit code %d, want 0:\n%s", code, transcript)
	}

	_, imapPort, _ := net.SplitHostPort(imapsAddr)
	out, err := exec.Command(curl, "-sS", "--cacert", caFile, "--resolve", "localhost:"+imapPort+":127.0.0.1",
		"-u", "anna:"+secret, "imaps://localhost:"+imapPort+"/INBOX;UID=1").CombinedOutput()
	if err != nil {
		t.Fatalf("curl imaps FETCH: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "Subject: Grillabend am Samstag") {
		t.Errorf("message 1 of anna's inbox lacks the subject:\n%s", out)
	}
	if !strings.Contains(string(out), "Authentication-Results: mail.familie.test") {
		t.Errorf("message 1 lacks the box's Authentication-Results field:\n%s", out)
	}

	// The agent receives the records that mail and calendar discovery need.
	select {
	case recs := <-agent.records:
		types := map[string]bool{}
		for _, r := range recs.Records {
			types[r.Name+" "+r.Type] = true
		}
		for _, want := range []string{"@ MX", "@ TXT", "_dmarc TXT", "_caldavs._tcp SRV", "_submissions._tcp SRV"} {
			if !types[want] {
				t.Errorf("records handed to the agent lack %s: %+v", want, recs.Records)
			}
		}
	case <-time.After(30 * time.Second):
		t.Error("heimwolke handed the agent no DNS records within 30 s")
	}

	// Thunderbird's autoconfig file is served on the autoconfig host over
	// HTTPS.
	_, httpsPort, _ := net.SplitHostPort(httpsAddr)
	out, err = exec.Command(curl, "-sS", "-k", "--resolve", "autoconfig.familie.test:"+httpsPort+":127.0.0.1",
		"https://autoconfig.familie.test:"+httpsPort+"/mail/config-v1.1.xml?emailaddress=anna@familie.test").CombinedOutput()
	if err != nil {
		t.Fatalf("curl autoconfig: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "<hostname>mail.familie.test</hostname>") {
		t.Errorf("autoconfig does not name mail.familie.test:\n%s", out)
	}

	checkRenewalOnEveryProtocol(t, filepath.Join(dataDir, "tls"), httpsAddr, imapsAddr, smtpAddr)
}

// serialOf returns the serial number, in hex, of the certificate that the
// server at addr presents to openssl s_client.
func serialOf(t *testing.T, addr, starttls string) string {
	t.Helper()
	openssl := testpeer.Require(t, "openssl", "openssl")
	args := []string{"s_client", "-connect", addr, "-servername", "localhost"}
	if starttls != "" {
		args = append(args, "-starttls", starttls)
	}
	sc := exec.Command(openssl, args...)
	sc.Stdin = strings.NewReader("")
	pemOut, err := sc.Output()
	if err != nil {
		t.Fatalf("openssl s_client %s: %v", addr, err)
	}
	x := exec.Command(openssl, "x509", "-noout", "-serial")
	x.Stdin = strings.NewReader(string(pemOut))
	out, err := x.CombinedOutput()
	if err != nil {
		t.Fatalf("openssl x509 -serial: %v\n%s", err, out)
	}
	return strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(string(out)), "serial="))
}

// checkRenewalOnEveryProtocol writes a renewed certificate into the TLS
// store, as the agent does, and checks that new connections on HTTPS,
// IMAPS and SMTP STARTTLS get it without a restart, while an IMAP
// connection opened before keeps working.
func checkRenewalOnEveryProtocol(t *testing.T, tlsDir, httpsAddr, imapsAddr, smtpAddr string) {
	t.Helper()
	for _, c := range []struct{ addr, starttls string }{{httpsAddr, ""}, {imapsAddr, ""}, {smtpAddr, "smtp"}} {
		if got := serialOf(t, c.addr, c.starttls); got != "01" {
			t.Fatalf("serial on %s before the renewal = %s, want 01", c.addr, got)
		}
	}
	old, err := tls.Dial("tcp", imapsAddr, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	greeting := make([]byte, 512)
	if _, err := old.Read(greeting); err != nil {
		t.Fatalf("IMAP greeting: %v", err)
	}

	writeTestCertificateSerial(t, tlsDir, 2)
	deadline := time.Now().Add(30 * time.Second)
	for _, c := range []struct{ addr, starttls string }{{httpsAddr, ""}, {imapsAddr, ""}, {smtpAddr, "smtp"}} {
		for serialOf(t, c.addr, c.starttls) != "02" {
			if time.Now().After(deadline) {
				t.Fatalf("%s still serves serial 01 30 seconds after the renewal", c.addr)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	if _, err := old.Write([]byte("a1 NOOP\r\n")); err != nil {
		t.Fatalf("IMAP connection from before the renewal: %v", err)
	}
	reply := make([]byte, 512)
	n, err := old.Read(reply)
	if err != nil || !strings.Contains(string(reply[:n]), "a1 OK") {
		t.Errorf("NOOP on the IMAP connection from before the renewal: %q, %v; want a1 OK", reply[:n], err)
	}
}
