package smtp

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/heimwolke/heimwolke/packages/testpeer"
)

// postfix is a Postfix instance from Debian in a temporary folder, on
// loopback ports. It plays the rest of the internet: it accepts mail for
// remote.test into maildirs, relays mail for the box's domain to the box,
// and offers a submission port with SASL logins checked by Dovecot. Every
// transport that could reach another host is error:.
type postfix struct {
	t          testing.TB
	dir        string
	port       int // plain SMTP, the MX of remote.test
	submission int // STARTTLS with SASL
	smtps      int // implicit TLS with SASL
	mailDir    string
}

type postfixOptions struct {
	// boxAddr is where mail for testDomain goes: the box's inbound port.
	boxAddr string
	// cert is the TLS certificate for the submission ports and STARTTLS.
	cert *testpeer.Cert
	// saslUser and saslPassword are the relay login; empty disables the
	// submission ports.
	saslUser, saslPassword string
}

func freePort(t testing.TB) int {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func startPostfix(t testing.TB, opts postfixOptions) *postfix {
	t.Helper()
	testpeer.Require(t, "postfix", "postfix")
	testpeer.RequireRoot(t, "Postfix starts as root and drops to the postfix user")
	dir, err := os.MkdirTemp("", "postfix-test-")
	if err != nil {
		t.Fatal(err)
	}
	// Postfix's daemons run as the postfix user and must reach the
	// folder, which t.TempDir's parent forbids.
	os.Chmod(dir, 0o755)
	t.Cleanup(func() { os.RemoveAll(dir) })

	p := &postfix{t: t, dir: dir, port: freePort(t), mailDir: filepath.Join(dir, "mail")}
	write := func(name, content string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	os.MkdirAll(p.mailDir, 0o755)
	os.MkdirAll(filepath.Join(dir, "queue"), 0o755)
	os.MkdirAll(filepath.Join(dir, "data"), 0o755)
	if u, err := user.Lookup("postfix"); err == nil {
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		os.Chown(filepath.Join(dir, "data"), uid, gid)
	}
	os.Chown(p.mailDir, 65534, 65534)

	mainCF := fmt.Sprintf(`compatibility_level = 3.6
queue_directory = %[1]s/queue
data_directory = %[1]s/data
mail_owner = postfix
setgid_group = postdrop
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mx.remote.test
mydomain = remote.test
mydestination =
mynetworks = 127.0.0.0/8
maillog_file = %[1]s/maillog
maillog_file_prefixes = %[1]s
alias_maps =
alias_database =
disable_dns_lookups = yes
smtp_host_lookup = native
default_transport = error:tests deliver nowhere else
relay_transport = error:tests deliver nowhere else
local_transport = error:tests deliver nowhere else
transport_maps = texthash:%[1]s/transport
virtual_mailbox_domains = remote.test
virtual_mailbox_maps = texthash:%[1]s/vmailbox
virtual_mailbox_base = %[1]s/mail
virtual_uid_maps = static:65534
virtual_gid_maps = static:65534
smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination
smtputf8_enable = no
smtp_tls_security_level = may
`, dir)
	master := fmt.Sprintf(`127.0.0.1:%d inet n - n - - smtpd
pickup unix n - n 60 1 pickup
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
rewrite unix - - n - - trivial-rewrite
bounce unix - - n - 0 bounce
defer unix - - n - 0 bounce
trace unix - - n - 0 bounce
verify unix - - n - 1 verify
flush unix n - n 1000? 0 flush
proxymap unix - - n - - proxymap
smtp unix - - n - - smtp
relay unix - - n - - smtp
showq unix n - n - - showq
error unix - - n - - error
retry unix - - n - - error
discard unix - - n - - discard
virtual unix - n n - - virtual
anvil unix - - n - 1 anvil
scache unix - - n - 1 scache
tlsmgr unix - - n 1000? 1 tlsmgr
postlog unix-dgram n - n - 1 postlogd
`, p.port)
	if opts.cert != nil {
		certFile, keyFile := opts.cert.WriteFiles(t, dir, "smtpd")
		mainCF += fmt.Sprintf("smtpd_tls_cert_file = %s\nsmtpd_tls_key_file = %s\nsmtpd_tls_security_level = may\n",
			certFile, keyFile)
	}
	if opts.saslUser != "" {
		p.submission, p.smtps = freePort(t), freePort(t)
		authPort := p.startDovecot(opts.saslUser, opts.saslPassword)
		mainCF += fmt.Sprintf("smtpd_sasl_type = dovecot\nsmtpd_sasl_path = inet:127.0.0.1:%d\n", authPort)
		sasl := " -o smtpd_sasl_auth_enable=yes -o smtpd_client_restrictions=permit_sasl_authenticated,reject"
		master += fmt.Sprintf("127.0.0.1:%d inet n - n - - smtpd -o smtpd_tls_security_level=encrypt%s\n", p.submission, sasl)
		master += fmt.Sprintf("127.0.0.1:%d inet n - n - - smtpd -o smtpd_tls_wrappermode=yes%s\n", p.smtps, sasl)
	}
	write("main.cf", mainCF)
	write("master.cf", master)
	write("vmailbox", "friend@remote.test remote.test/friend/\nother@remote.test remote.test/other/\n")
	transport := ""
	if opts.boxAddr != "" {
		transport = testDomain + " smtp:[" + strings.Replace(opts.boxAddr, ":", "]:", 1) + "\n"
	}
	write("transport", transport)

	p.postfix("start")
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "maillog"))
			t.Logf("postfix log:\n%s", log)
		}
	})
	waitFor(t, 20*time.Second, "postfix to listen", func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(p.port))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return p
}

func (p *postfix) postfix(args ...string) {
	p.t.Helper()
	out, err := exec.Command("postfix", append([]string{"-c", p.dir}, args...)...).CombinedOutput()
	if err != nil {
		// Postfix writes its fatal errors to the log file, not stderr.
		log, _ := os.ReadFile(filepath.Join(p.dir, "maillog"))
		p.t.Fatalf("postfix %v: %v\n%s\n%s", args, err, out, log)
	}
}

// stop stops Postfix and waits until its port is closed.
func (p *postfix) stop() {
	exec.Command("postfix", "-c", p.dir, "stop").Run()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(p.port))
		if err != nil {
			return
		}
		c.Close()
		time.Sleep(100 * time.Millisecond)
	}
}

// startDovecot runs Dovecot's auth service with one user, for Postfix's
// SASL logins, and returns its port.
func (p *postfix) startDovecot(user, password string) int {
	t := p.t
	dovecot := testpeer.Require(t, "dovecot", "dovecot-imapd")
	port := freePort(t)
	dir := filepath.Join(p.dir, "dovecot")
	os.MkdirAll(dir, 0o755)
	passwd := filepath.Join(dir, "passwd")
	os.WriteFile(passwd, []byte(user+":{PLAIN}"+password+"\n"), 0o644)
	conf := filepath.Join(dir, "dovecot.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`base_dir = %[1]s/run
state_dir = %[1]s/state
log_path = %[1]s/dovecot.log
instance_name = hwtest-%[2]d
protocols =
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
passdb {
  driver = passwd-file
  args = scheme=PLAIN username_format=%%u %[3]s
}
userdb {
  driver = static
  args = uid=65534 gid=65534 home=%[1]s/home allow_all_users=yes
}
service auth {
  inet_listener {
    address = 127.0.0.1
    port = %[2]d
  }
}
`, dir, port, passwd)), 0o644)
	cmd := exec.Command(dovecot, "-F", "-c", conf)
	out := &strings.Builder{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			log, _ := os.ReadFile(filepath.Join(dir, "dovecot.log"))
			t.Logf("dovecot output:\n%s\n%s", out, log)
		}
	})
	waitFor(t, 20*time.Second, "dovecot auth to listen", func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	return port
}

// received returns the messages in the maildir of user@remote.test.
func (p *postfix) received(user string) []string {
	var msgs []string
	files, _ := filepath.Glob(filepath.Join(p.mailDir, "remote.test", user, "new", "*"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err == nil {
			msgs = append(msgs, string(b))
		}
	}
	return msgs
}

func (p *postfix) addr() string { return "127.0.0.1:" + strconv.Itoa(p.port) }
