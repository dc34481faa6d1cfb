package integration

import (
	"os"
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
// then finishes the upload with each client's resume: the file is
// delivered once, byte-identical, as one transfer.
func TestResumeAfterKill(t *testing.T) {
	src, sha := randomFile(t, resumeSize)
	for _, tt := range []struct {
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
	} {
		t.Run(tt.name, func(t *testing.T) {
			g, key := startAcme(t, gatewayOpts{}, supplierSpec{})
			tr := g.killUploadAt(t, key, src, "/big.bin", resumeSize*6/10)
			if out, err := tt.resume(g, key); err != nil {
				t.Fatalf("resume: %v\n%s\n%s", err, out, g.logTail(20))
			}
			got := assertArrived(t, g, "acme", "/big.bin", sha, resumeSize)
			if got.ID != tr.ID {
				t.Errorf("delivered as transfer %s, not the interrupted %s", got.ID, tr.ID)
			}
			if n := countAt(g.transfers(), "acme", "/big.bin"); n != 1 {
				t.Errorf("%d transfers of /big.bin; want the one, resumed", n)
			}
			if _, err := os.Stat(filepath.Join(g.landingDir, storage.KeptDir)); !os.IsNotExist(err) {
				t.Errorf("kept bytes left in landing: %v", err)
			}
			g.auditVerifies(t)
		})
	}
}

// killUploadAt starts an OpenSSH upload of src to p, kills the client (and
// its ssh) once at least at bytes have landed, and waits for the upload to
// be recorded as interrupted.
func (g *gateway) killUploadAt(t *testing.T, key clientKey, src, p string, at int64) ledger.Transfer {
	t.Helper()
	cmd := g.sftpCommand("acme", key, "put "+src+" "+p+"\n")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	eventually(t, 60*time.Second, "60% of the upload to land", func() bool {
		return stagedBytes(g.landingDir) >= at
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

// stagedBytes is the size of the largest file being written in a local
// landing store.
func stagedBytes(landing string) int64 {
	entries, _ := os.ReadDir(filepath.Join(landing, storage.StagingDir))
	var most int64
	for _, e := range entries {
		if fi, err := e.Info(); err == nil {
			most = max(most, fi.Size())
		}
	}
	return most
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
