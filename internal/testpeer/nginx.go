package testpeer

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Nginx is an HTTPS receiver on 127.0.0.1 that takes files by PUT (the
// WebDAV module) into Root, and asks every client for a certificate from
// its client CA (ssl_verify_client on): the partner end of an https
// route.
type Nginx struct {
	Addr string // host:port
	URL  string // https://Addr/
	Root string // where PUT files land: URL + "a/b" is Root/a/b

	tb   testing.TB
	dir  string // configuration, logs, pid and temporary bodies
	proc *Process
}

// StartNginx starts nginx serving server (its certificate and key) and
// requiring client certificates issued by clientCA, and waits until it
// listens. It is stopped when the test ends, and its error log shown if
// the test failed.
func StartNginx(tb testing.TB, server Pair, clientCA string) *Nginx {
	tb.Helper()
	Require(tb, "nginx")
	n := &Nginx{Addr: FreeAddr(tb), Root: tb.TempDir(), tb: tb, dir: tb.TempDir()}
	n.URL = "https://" + n.Addr + "/"
	if err := WriteNginxConf(n.dir, n.Addr, n.Root, server, clientCA); err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() {
		n.Stop()
		if tb.Failed() {
			out, _ := os.ReadFile(filepath.Join(n.dir, "error.log"))
			tb.Logf("nginx error log:\n%s", out)
		}
	})
	n.Start()
	return n
}

// AccessLog returns nginx's access log: one line per request, of the
// method, path, status and the X-Content-SHA256, X-Airlock-Batch,
// X-Airlock-Transfer and X-Datakey-* headers ("-" when absent).
func (n *Nginx) AccessLog() string {
	n.tb.Helper()
	b, err := os.ReadFile(filepath.Join(n.dir, "access.log"))
	if err != nil {
		n.tb.Fatal(err)
	}
	return string(b)
}

// Start runs nginx again, on the same address and directories, after
// Stop; StartNginx has already called it once.
func (n *Nginx) Start() {
	n.tb.Helper()
	bin := Require(n.tb, "nginx")
	// -e: the error log before the configuration is read, which would
	// otherwise be the system's.
	cmd := exec.Command(bin, "-p", n.dir, "-c", filepath.Join(n.dir, "nginx.conf"), "-e", filepath.Join(n.dir, "error.log"))
	n.proc = Start(n.tb, cmd)
	WaitTCP(n.tb, n.Addr, n.proc.Exited())
}

// Stop ends nginx (SIGTERM, SIGKILL after 10 s) and waits until it has
// gone, so that its port refuses connections.
func (n *Nginx) Stop() {
	if n.proc != nil {
		n.proc.Stop(10 * time.Second)
		n.proc = nil
	}
}

// WriteNginxConf writes dir/nginx.conf: nginx listening on addr with
// TLS (server's certificate), requiring client certificates of clientCA,
// taking PUT files into root; its logs, pid and temporary bodies in dir,
// which must be on root's file system (the bodies are renamed into it).
// Run it as nginx -p dir -c dir/nginx.conf -e dir/error.log.
func WriteNginxConf(dir, addr, root string, server Pair, clientCA string) error {
	conf := fmt.Sprintf(`daemon off;
master_process off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log info;
events { worker_connections 64; }
http {
	# The headers airlock adds, to show they reach a real receiver.
	log_format put '$request_method $uri $status $http_x_content_sha256 $http_x_airlock_batch $http_x_airlock_transfer $http_x_datakey_ciphertext $http_x_datakey_encryption_key_id $http_x_datakey_iv';
	access_log %[1]s/access.log put;
	client_body_temp_path %[1]s/body;
	proxy_temp_path %[1]s/proxy;
	fastcgi_temp_path %[1]s/fastcgi;
	uwsgi_temp_path %[1]s/uwsgi;
	scgi_temp_path %[1]s/scgi;
	server {
		listen %[2]s ssl;
		ssl_protocols TLSv1.2 TLSv1.3;
		ssl_certificate %[3]s;
		ssl_certificate_key %[4]s;
		ssl_client_certificate %[5]s;
		ssl_verify_client on;
		root %[6]s;
		location / {
			dav_methods PUT;
			create_full_put_path on;
			client_max_body_size 0;
		}
	}
}
`, dir, addr, server.Cert, server.Key, clientCA, root)
	return os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(conf), 0o600)
}
