package integration

import (
	"io/fs"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/storage"
)

// resumeSize is the upload each resume test cuts at 60% and finishes.
const resumeSize = 500 << 20

// TestResumeAfterKill kills the OpenSSH client 60% into a 500 MiB upload,
// then finishes the upload with each client's resume, on local and on S3
// landing: the file is delivered once, byte-identical, as one transfer.
func TestResumeAfterKill(t *testing.T) {
	src, sha := randomFile(t, resumeSize)
	clients := []struct {
		name   string
		resume func(g *gateway, key clientKey) ([]byte, error)
	}{
		{"OpenSSH reput", func(g *gateway, key clientKey) ([]byte, error) {
			out, err := g.sftpBatch("acme", key, "reput "+src+" /big.bin\n")
			return []byte(out), err
		}},
		{"paramiko reopen and seek", func(g *gateway, key clientKey) ([]byte, error) {
			python := requireParamiko(t)
			return exec.Command(python, "testdata/paramiko_resume.py", "127.0.0.1", g.port(), "acme", key.path, src, "/big.bin").CombinedOutput()
		}},
	}
	landings := []struct {
		name  string
		start func(t *testing.T) (g *gateway, key clientKey, inFlight string)
	}{
		{"local landing", func(t *testing.T) (*gateway, clientKey, string) {
			g, key := startAcme(t, gatewayOpts{}, supplierSpec{})
			return g, key, filepath.Join(g.landingDir, storage.StagingDir)
		}},
		{"S3 landing", func(t *testing.T) (*gateway, clientKey, string) {
			s3 := startVersity(t, "landing")
			bucket := filepath.Join(s3.Root, "landing")
			g, key := startAcme(t, gatewayOpts{landing: s3.url("landing"), landingDir: bucket, env: s3.Env()}, supplierSpec{})
			// versitygw keeps the parts of an upload in progress here.
			return g, key, filepath.Join(bucket, ".sgwtmp")
		}},
	}
	for _, l := range landings {
		for _, c := range clients {
			t.Run(l.name+", "+c.name, func(t *testing.T) {
				g, key, inFlight := l.start(t)
				tr := g.killUploadAt(t, key, src, "/big.bin", resumeSize*6/10, func() int64 { return bytesBelow(inFlight) })
				g.finishResumed(t, tr, sha, func() ([]byte, error) { return c.resume(g, key) })
				if n := bytesBelow(inFlight); n != 0 {
					t.Errorf("%d bytes of writes in progress left in landing", n)
				}
			})
		}
	}
}

// finishResumed resumes interrupted upload tr and checks that it is
// delivered whole, once, as the same transfer, with nothing kept after.
func (g *gateway) finishResumed(t *testing.T, tr ledger.Transfer, sha string, resume func() ([]byte, error)) {
	t.Helper()
	if out, err := resume(); err != nil {
		t.Fatalf("resume: %v\n%s\n%s", err, out, g.logTail(20))
	}
	got := assertArrived(t, g, "acme", tr.Path, sha, resumeSize)
	if got.ID != tr.ID {
		t.Errorf("delivered as transfer %s, not the interrupted %s", got.ID, tr.ID)
	}
	if n := countAt(g.transfers(), "acme", tr.Path); n != 1 {
		t.Errorf("%d transfers of %s; want the one, resumed", n, tr.Path)
	}
	if n := bytesBelow(filepath.Join(g.landingDir, storage.KeptDir)); n != 0 {
		t.Errorf("%d kept bytes left in landing", n)
	}
	g.auditVerifies(t)
}

// killUploadAt starts an OpenSSH upload of src to p, kills the client (and
// its ssh) once at least at bytes have landed, and waits for the upload to
// be recorded as interrupted.
func (g *gateway) killUploadAt(t *testing.T, key clientKey, src, p string, at int64, landed func() int64) ledger.Transfer {
	t.Helper()
	cmd := g.sftpCommand("acme", key, "put "+src+" "+p+"\n")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	eventually(t, 60*time.Second, "60% of the upload to land", func() bool {
		return landed() >= at
	})
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	<-done
	tr := g.waitTransfer(t, "acme", p, 20*time.Second, "the cut upload to be interrupted", func(tr ledger.Transfer) bool {
		return tr.State == ledger.Interrupted
	})
	if tr.Size < at || tr.Size >= resumeSize {
		t.Fatalf("interrupted at %d bytes; want at least %d of %d", tr.Size, at, int64(resumeSize))
	}
	t.Logf("client killed; %d bytes kept", tr.Size)
	return tr
}

// bytesBelow is the size of the files below dir, 0 if there is none.
func bytesBelow(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func countAt(trs []ledger.Transfer, supplier, p string) int {
	n := 0
	for _, tr := range trs {
		if tr.Supplier == supplier && tr.Path == p {
			n++
		}
	}
	return n
}
