package integration

// The bad-input matrix: hostile or merely odd requests against the real
// airlock binary, sent by the OpenSSH sftp client and, for what that client
// will not send, by a raw github.com/pkg/sftp client. After each case the
// client got a clear error where it had to fail, nothing appeared outside
// the landing store, no transfer is left receiving, every failed row says
// why, the audit chain verifies and a normal upload still works.

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"math"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/sftptest"
	"github.com/airlock-gw/airlock/internal/storage"
)

// emptySHA256 is the sha256 of no bytes at all.
const emptySHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

// trySFTP opens a pkg/sftp client on the gateway as user, authenticating
// with the OpenSSH private key file of key and ignoring the host key. The
// SSH connection is returned too, so a test can drop it with files still
// open. Both are closed when t ends.
func trySFTP(t *testing.T, g *gateway, user string, key clientKey, opts ...sftp.ClientOption) (*sftp.Client, *ssh.Client, error) {
	t.Helper()
	conn, err := sshDial(g, user, key)
	if err != nil {
		return nil, nil, err
	}
	c, err := sftp.NewClient(conn, opts...)
	if err != nil {
		conn.Close()
		return nil, nil, err
	}
	t.Cleanup(func() {
		c.Close()
		conn.Close()
	})
	return c, conn, nil
}

// sshDial logs in to g as user with the OpenSSH private key file of key,
// ignoring the host key; the handshake must finish within 15s.
func sshDial(g *gateway, user string, key clientKey) (*ssh.Client, error) {
	return sshDialAddr(g.sftpAddr, user, key)
}

// sshDialAddr is sshDial to the SSH server at addr (a gateway, or a load
// balancer in front of some).
func sshDialAddr(addr, user string, key clientKey) (*ssh.Client, error) {
	pem, err := os.ReadFile(key.path)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.ParsePrivateKey(pem)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", key.path, err)
	}
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	_ = nc.SetDeadline(time.Now().Add(15 * time.Second))
	sc, chans, reqs, err := ssh.NewClientConn(nc, addr, &ssh.ClientConfig{
		User:            user,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.InsecureIgnoreHostKey(),
	})
	if err != nil {
		nc.Close()
		return nil, err
	}
	_ = nc.SetDeadline(time.Time{})
	return ssh.NewClient(sc, chans, reqs), nil
}

// dialSFTP is trySFTP for a login that must work.
func dialSFTP(t *testing.T, g *gateway, user string, key clientKey, opts ...sftp.ClientOption) (*sftp.Client, *ssh.Client) {
	t.Helper()
	c, conn, err := trySFTP(t, g, user, key, opts...)
	if err != nil {
		t.Fatalf("pkg/sftp login as %s: %v", user, err)
	}
	return c, conn
}

// fence watches the places no request may ever reach: the gateway's tree
// outside its stores (landing, quarantine, destinations, audit
// checkpoints), a directory next
// to it, and the working directory of the airlock process.
type fence struct {
	g         *gateway
	suppliers []string
	sibling   string
	before    map[string]bool
	cwd       string
}

// newFence takes the top-level test's t (so that the sibling directory sits
// next to the gateway's tree) and is made after the gateway has started.
func newFence(t *testing.T, g *gateway, suppliers ...string) *fence {
	t.Helper()
	cwd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	f := &fence{g: g, suppliers: suppliers, sibling: t.TempDir(), cwd: cwd}
	if filepath.Dir(f.sibling) != filepath.Dir(g.dir) {
		t.Fatalf("sibling %s is not next to the gateway tree %s", f.sibling, g.dir)
	}
	writeFile(t, filepath.Join(f.sibling, "keep.txt"), "sibling of the gateway tree\n")
	f.before = f.snapshot(t)
	return f
}

// snapshot lists every path of the watched places, except the stores
// (checked against the ledger instead) and the database's files.
func (f *fence) snapshot(t *testing.T) map[string]bool {
	t.Helper()
	stores := []string{f.g.landing, filepath.Join(f.g.dir, "delivered"), filepath.Join(f.g.dir, "state", "quarantine"),
		filepath.Join(f.g.dir, "state", "checkpoints")}
	seen := make(map[string]bool)
	walk := func(label, root string) {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if os.IsNotExist(err) {
					return nil
				}
				return err
			}
			if slices.Contains(stores, p) {
				return filepath.SkipDir
			}
			rel, _ := filepath.Rel(root, p)
			if strings.HasPrefix(rel, filepath.Join("state", "airlock.db")) {
				return nil
			}
			seen[label+":"+rel] = true
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	walk("tree", f.g.dir)
	walk("sibling", f.sibling)
	entries, err := os.ReadDir(f.cwd)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		seen["cwd:"+e.Name()] = true
	}
	// The parent of the tree holds the test's temporary directories only.
	entries, err = os.ReadDir(filepath.Dir(f.g.dir))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			seen["parent:"+e.Name()] = true
		}
	}
	return seen
}

// check reports every path that appeared in the watched places, and every
// landing directory that is not a supplier's.
func (f *fence) check(t *testing.T) {
	t.Helper()
	for p := range f.snapshot(t) {
		if !f.before[p] {
			t.Errorf("%s appeared outside the stores", p)
		}
	}
	entries, err := os.ReadDir(f.g.landing)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.IsDir() && e.Name() == storage.KeptDir {
			continue // what interrupted uploads keep: counted by settle
		}
		if e.IsDir() && e.Name() == storage.StagingDir {
			// Writes in progress; what is left there once every upload
			// settled is a leak.
			if staged, err := os.ReadDir(filepath.Join(f.g.landing, e.Name())); err != nil || len(staged) > 0 {
				t.Errorf("landing's staging directory holds %d files after the uploads settled (%v)", len(staged), err)
			}
			continue
		}
		if !e.IsDir() || !slices.Contains(f.suppliers, e.Name()) {
			t.Errorf("landing holds %s, which is no supplier's directory", e.Name())
		}
	}
}

// settle waits (bounded) until every transfer rests (see gateway.rests),
// then checks that the ledger and the stores agree: landing holds exactly
// the bytes of the transfers still pending, each supplier's destination
// exactly those of its delivered transfers, and every failed row says why;
// and that the audit chain verifies and nothing leaked outside the stores.
// It returns the rows. A transfer that does not come to rest is reported
// once (see gateway.stuck).
func (f *fence) settle(t *testing.T) []ledger.Transfer {
	t.Helper()
	g := f.g
	restless := func(trs []ledger.Transfer) []ledger.Transfer {
		var out []ledger.Transfer
		for _, tr := range trs {
			if !g.rests(tr) {
				out = append(out, tr)
			}
		}
		return out
	}
	const within = 20 * time.Second
	failing := func(trs []ledger.Transfer) bool { // every one left keeps failing
		return !slices.ContainsFunc(trs, func(tr ledger.Transfer) bool { return tr.Error == "" })
	}
	trs := g.transfers()
	start := time.Now()
	for len(restless(trs)) > 0 {
		if waited := time.Since(start); waited > within || waited > failingFor && failing(restless(trs)) {
			t.Errorf("transfers still on their way after %s:\n%s", time.Since(start).Round(time.Second), g.diagnosis(restless(trs)))
			for _, tr := range restless(trs) {
				g.stuck.Store(tr.ID, true)
			}
			break
		}
		time.Sleep(pollEvery)
		trs = g.transfers()
	}

	wantLanded := make(map[string]bool)
	wantDelivered := make(map[string]string) // file on disk → sha256
	var wantKept int64                       // the bytes interrupted uploads keep
	for _, tr := range trs {                 // newest first: a newer delivery at a path wins
		switch {
		case (tr.State == ledger.Failed || tr.State == ledger.Interrupted) && strings.TrimSpace(tr.Error) == "":
			t.Errorf("%s transfer %s (%s) has no error", tr.State, tr.ID, tr.Path)
		case tr.State == ledger.Interrupted:
			wantKept += tr.Size
		case isPending(tr):
			wantLanded[g.landedPath(tr)] = true
		case tr.State == ledger.Delivered:
			if p := g.destFile(tr.Supplier, tr.Path); wantDelivered[p] == "" {
				wantDelivered[p] = tr.SHA256
			}
		}
	}
	kept := filepath.Join(g.landingDir, storage.KeptDir)
	if n := bytesBelow(kept); n != wantKept {
		t.Errorf("landing keeps %d bytes of interrupted uploads, the ledger %d", n, wantKept)
	}
	landed := slices.DeleteFunc(landedFiles(t, g.landingDir), func(p string) bool { return strings.HasPrefix(p, kept+string(filepath.Separator)) })
	for _, p := range landed {
		if !wantLanded[p] {
			t.Errorf("landing holds %s, which is no pending transfer", p)
		}
	}
	if len(landed) != len(wantLanded) {
		t.Errorf("landing holds %d files, the ledger %d pending transfers", len(landed), len(wantLanded))
	}
	delivered := 0
	for _, name := range f.suppliers {
		dir := g.specs[name].dest.dir
		if dir == "" { // held: nothing is ever delivered
			continue
		}
		for _, p := range landedFiles(t, dir) {
			delivered++
			switch sha, ok := wantDelivered[p]; {
			case !ok:
				t.Errorf("destination holds %s, which is no delivered transfer", p)
			case fileSHA256(t, p) != sha:
				t.Errorf("delivered %s does not have the sha256 of its upload, %s", p, sha)
			}
		}
	}
	if delivered != len(wantDelivered) {
		t.Errorf("the destinations hold %d files, the ledger %d delivered transfers", delivered, len(wantDelivered))
	}
	if out, errOut, err := g.airlock("audit", "verify"); err != nil {
		t.Errorf("audit verify: %v\n%s%s", err, out, errOut)
	}
	f.check(t)
	return trs
}

var aliveSeq atomic.Int64

// stillServes uploads a normal file with the OpenSSH client and checks it
// arrived (see assertArrived).
func stillServes(t *testing.T, g *gateway, user string, key clientKey) {
	t.Helper()
	src, sha := randomFile(t, 32<<10)
	name := fmt.Sprintf("alive-%d.bin", aliveSeq.Add(1))
	if out, err := g.sftpBatch(user, key, fmt.Sprintf("put %s %s\n", src, name)); err != nil {
		t.Fatalf("a normal upload after the case failed: %v\n%s", err, out)
	}
	assertArrived(t, g, user, "/"+name, sha, 32<<10)
}

// afterCase is what every case ends with.
func (f *fence) afterCase(t *testing.T, user string, key clientKey) {
	t.Helper()
	f.settle(t)
	stillServes(t, f.g, user, key)
}

// wantStatus checks that err is an SFTP status with code whose message
// contains each of parts. pkg/sftp keeps the message only for codes it does
// not map to an os error; permission denied (see wantDenied) and no such
// file lose it, so their messages are checked with a raw client (dialRaw).
func wantStatus(t *testing.T, what string, err error, code uint32, parts ...string) {
	t.Helper()
	var se *sftp.StatusError
	if !errors.As(err, &se) {
		t.Errorf("%s: err = %v, want an SFTP status %d", what, err, code)
		return
	}
	if se.Code != code {
		t.Errorf("%s: status %d (%v), want %d", what, se.Code, err, code)
	}
	for _, p := range parts {
		if !strings.Contains(err.Error(), p) {
			t.Errorf("%s: message %v does not say %q", what, err, p)
		}
	}
}

// wantDenied checks that pkg/sftp reported a permission-denied status.
func wantDenied(t *testing.T, what string, err error) {
	t.Helper()
	if !errors.Is(err, os.ErrPermission) {
		t.Errorf("%s: err = %v, want permission denied", what, err)
	}
}

// dialRaw logs in as user and opens an SFTP session driven packet by
// packet, to read the status message of refusals that pkg/sftp's client
// reduces to os.ErrPermission.
func dialRaw(t *testing.T, g *gateway, user string, key clientKey) *sftptest.Client {
	t.Helper()
	conn, err := sshDial(g, user, key)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return sftptest.New(t, conn)
}

// wantRaw checks a raw status.
func wantRaw(t *testing.T, what string, code uint32, msg string, wantCode uint32, parts ...string) {
	t.Helper()
	if code != wantCode {
		t.Errorf("%s: status %d %q, want %d", what, code, msg, wantCode)
	}
	for _, p := range parts {
		if !strings.Contains(msg, p) {
			t.Errorf("%s: message %q does not say %q", what, msg, p)
		}
	}
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// pseudoRandom returns n reproducible bytes.
func pseudoRandom(n int, seed byte) []byte {
	b := make([]byte, n)
	src := rand.NewChaCha8([32]byte{seed, 0x5e, 0xed})
	_, _ = src.Read(b)
	return b
}

// newestAt is the newest transfer of supplier at p, failing if none.
func newestAt(t *testing.T, g *gateway, supplier, p string) ledger.Transfer {
	t.Helper()
	tr, ok := transferAt(g.transfers(), supplier, p)
	if !ok {
		t.Fatalf("no transfer of %s at %s", supplier, p)
	}
	return tr
}

// wantFailed checks that the transfer at p failed for a reason containing
// reason and left no bytes in landing.
func wantFailed(t *testing.T, g *gateway, supplier, p, reason string) ledger.Transfer {
	t.Helper()
	var tr ledger.Transfer
	eventually(t, 15*time.Second, "the transfer of "+p+" to fail", func() bool {
		var recorded bool
		tr, recorded = transferAt(g.transfers(), supplier, p)
		return recorded && tr.State != ledger.Receiving
	})
	if tr.State != ledger.Failed || !strings.Contains(tr.Error, reason) {
		t.Errorf("transfer %s: state %s, error %q; want failed with %q", p, tr.State, tr.Error, reason)
	}
	for _, f := range landedFiles(t, g.landingDir) {
		if strings.Contains(filepath.ToSlash(f), tr.LandingKey) {
			t.Errorf("the failed upload of %s left %s in landing", p, f)
		}
	}
	return tr
}

// TestBadInputNames: names outside the policy are refused with a message
// naming the rule, by both clients, and leave no transfer behind; a name of
// exactly 255 bytes and a path of 16 levels are accepted.
func TestBadInputNames(t *testing.T) {
	t.Parallel()
	g, key := startAcme(t, gatewayOpts{}, supplierSpec{})
	f := newFence(t, g, "acme")
	c, _ := dialSFTP(t, g, "acme", key)
	raw := dialRaw(t, g, "acme", key)
	src, srcSHA := randomFile(t, 4096)
	srcBytes, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name string
		file string
		rule string // "" when the name is accepted
		cli  bool   // expressible in an OpenSSH batch line
	}{
		{"space", "a b.csv", "contains a space", true},
		{"tab", "a\tb.csv", "contains control character U+0009", true},
		{"newline", "a\nb.csv", "contains control character U+000A", false},
		{"NUL", "a\x00b.csv", "contains control character U+0000", false},
		{"DEL", "a\x7fb.csv", "contains control character U+007F", true},
		{"Cyrillic look-alike", "d\u0430ta.csv", "contains non-ASCII character U+0430", true},
		{"fullwidth", "\uff44\uff41\uff54\uff41.csv", "contains non-ASCII character U+FF44", true},
		{"RTL override", "invoice\u202efdp.exe", "contains non-ASCII character U+202E", true},
		{"4 KiB name", strings.Repeat("n", 4096), "path longer than 1024 bytes", false},
		{"300-byte name", strings.Repeat("n", 296) + ".csv", "longer than 255 bytes", true},
		{"255-byte name", strings.Repeat("a", 251) + ".csv", "", true},
		{"leading dot", ".data.csv", "starts with '.'", true},
		{"leading dash", "-data.csv", "starts with '-'", true},
		{"invalid UTF-8", "data\xff.csv", "not valid UTF-8", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, rows := g.lastSeq(), len(g.transfers())
			rawName := "/" + tt.file
			if tt.rule == "" { // a second accepted name of the same length
				rawName = "/r" + tt.file[1:]
			}

			if tt.cli {
				out, err := g.sftpBatch("acme", key, fmt.Sprintf("put %s \"%s\"\n", src, tt.file))
				switch {
				case tt.rule == "" && err != nil:
					t.Fatalf("OpenSSH put of an accepted name: %v\n%s", err, out)
				case tt.rule == "":
					assertArrived(t, g, "acme", "/"+tt.file, srcSHA, 4096)
				case err == nil:
					t.Fatalf("OpenSSH put succeeded:\n%s", out)
				case !strings.Contains(out, "Permission denied"):
					t.Errorf("OpenSSH put: the client was not told permission denied:\n%s", out)
				}
			}

			w, err := c.OpenFile(rawName, os.O_WRONLY|os.O_CREATE|os.O_TRUNC)
			if tt.rule == "" {
				if err != nil {
					t.Fatalf("pkg/sftp open of an accepted name: %v", err)
				}
				if _, err := w.Write(srcBytes); err != nil {
					t.Fatal(err)
				}
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
				assertArrived(t, g, "acme", rawName, srcSHA, 4096)
			} else {
				if err == nil {
					w.Close()
					t.Fatalf("pkg/sftp open of %q succeeded", rawName)
				}
				wantDenied(t, "pkg/sftp open", err)
				code, msg := raw.OpenWrite(rawName)
				wantRaw(t, "raw OPEN", code, msg, sftptest.FXPermissionDenied, tt.rule, "allowed:")
				if _, ok := g.findEvent(before, "request.refused", map[string]string{"reason": "name-policy"}); !ok {
					t.Error("no request.refused audit event with reason name-policy")
				}
				if n := len(g.transfers()); n != rows {
					t.Errorf("the refused name made %d transfer rows", n-rows)
				}
			}
			f.afterCase(t, "acme", key)
		})
	}

	t.Run("deep paths", func(t *testing.T) {
		var dirs []string
		var batch strings.Builder
		for i := 1; i <= 16; i++ {
			dirs = append(dirs, fmt.Sprintf("d%02d", i))
			fmt.Fprintf(&batch, "mkdir %s\n", strings.Join(dirs, "/"))
		}
		if out, err := g.sftpBatch("acme", key, batch.String()); err != nil {
			t.Fatalf("mkdir of 16 levels: %v\n%s", err, out)
		}
		level16 := strings.Join(dirs, "/")
		before := g.lastSeq()
		out, err := g.sftpBatch("acme", key, "mkdir "+level16+"/d17\n")
		if err == nil || !strings.Contains(out, "Permission denied") {
			t.Fatalf("mkdir of level 17: %v\n%s", err, out)
		}
		if _, ok := g.findEvent(before, "request.refused", map[string]string{"reason": "name-policy", "error": "more than 16 directory levels"}); !ok {
			t.Error("no request.refused audit event for level 17")
		}
		// A file is a level too: 15 directories and a file are 16.
		file16 := strings.Join(dirs[:15], "/") + "/f.csv"
		if out, err := g.sftpBatch("acme", key, fmt.Sprintf("put %s %s\n", src, file16)); err != nil {
			t.Fatalf("put at level 16: %v\n%s", err, out)
		}
		assertArrived(t, g, "acme", "/"+file16, srcSHA, 4096)
		if out, err := g.sftpBatch("acme", key, fmt.Sprintf("put %s %s/f.csv\n", src, level16)); err == nil {
			t.Fatalf("put at level 17 succeeded:\n%s", out)
		}

		// mkdir -p: pkg/sftp's MkdirAll makes 16 levels and is refused at 17.
		var levels []string
		for i := 1; i <= 17; i++ {
			levels = append(levels, fmt.Sprintf("p%02d", i))
		}
		level17 := "/" + strings.Join(levels, "/")
		wantDenied(t, "MkdirAll of 17 levels", c.MkdirAll(level17))
		if fi, err := c.Stat("/" + strings.Join(levels[:16], "/")); err != nil || !fi.IsDir() {
			t.Errorf("level 16 of MkdirAll: %v, %v", fi, err)
		}
		_, err = c.Stat(level17)
		wantDenied(t, "Stat of level 17", err)
		code, msg := raw.Status(sftptest.FXPMkdir, level17, uint32(0))
		wantRaw(t, "raw MKDIR of level 17", code, msg, sftptest.FXPermissionDenied, "more than 16 directory levels")

		// Short names, long path: 5 × 250 bytes is over 1024.
		long := "/" + strings.Repeat(strings.Repeat("L", 249)+"/", 5) + "f.csv"
		_, err = c.OpenFile(long, os.O_WRONLY|os.O_CREATE)
		wantDenied(t, "open of a 1,256-byte path", err)
		code, msg = raw.OpenWrite(long)
		wantRaw(t, "raw OPEN of a 1,256-byte path", code, msg, sftptest.FXPermissionDenied, "path longer than 1024 bytes")
		f.afterCase(t, "acme", key)
	})
}

// TestBadInputSizes: an empty file is received with the sha256 of nothing;
// a file of exactly max_file_size is received and one byte more is refused
// at that byte, by either client.
func TestBadInputSizes(t *testing.T) {
	t.Parallel()
	const limit = 1 << 20
	g, key := startAcme(t, gatewayOpts{maxFileSize: "1MiB"}, supplierSpec{})
	f := newFence(t, g, "acme")
	c, _ := dialSFTP(t, g, "acme", key)

	t.Run("zero bytes", func(t *testing.T) {
		empty := filepath.Join(t.TempDir(), "empty")
		writeFile(t, empty, "")
		if out, err := g.sftpBatch("acme", key, fmt.Sprintf("put %s zero.csv\n", empty)); err != nil {
			t.Fatalf("put of an empty file: %v\n%s", err, out)
		}
		assertArrived(t, g, "acme", "/zero.csv", emptySHA256, 0)

		w, err := c.Create("/zero-raw.csv")
		if err != nil {
			t.Fatal(err)
		}
		if err := w.Close(); err != nil {
			t.Fatalf("close of an empty upload: %v", err)
		}
		tr := assertArrived(t, g, "acme", "/zero-raw.csv", emptySHA256, 0)
		// Delivered, it has left the supplier's view; its receipt says so.
		r, err := c.Open("/zero-raw.csv.receipt.json")
		if err != nil {
			t.Fatalf("open the receipt of the empty upload: %v", err)
		}
		defer r.Close()
		if got := decodeReceipt(t, r); got.TransferID != tr.ID || got.Size != 0 || got.SHA256 != emptySHA256 || got.Outcome != "delivered" {
			t.Errorf("receipt of the empty upload: %+v", got)
		}
		f.afterCase(t, "acme", key)
	})

	t.Run("OpenSSH at and over the limit", func(t *testing.T) {
		at, atSHA := randomFile(t, limit)
		over, _ := randomFile(t, limit+1)
		if out, err := g.sftpBatch("acme", key, fmt.Sprintf("put %s at.bin\n", at)); err != nil {
			t.Fatalf("upload of exactly the limit: %v\n%s", err, out)
		}
		assertArrived(t, g, "acme", "/at.bin", atSHA, limit)
		before := g.lastSeq()
		if out, err := g.sftpBatch("acme", key, fmt.Sprintf("put %s over.bin\n", over)); err == nil {
			t.Fatalf("upload one byte over the limit succeeded:\n%s", out)
		}
		wantFailed(t, g, "acme", "/over.bin", "maximum file size")
		if _, ok := g.findEvent(before, "upload.fail", map[string]string{"reason": "too-large"}); !ok {
			t.Error("no upload.fail event with reason too-large")
		}
		f.afterCase(t, "acme", key)
	})

	t.Run("pkg/sftp write ending at the limit", func(t *testing.T) {
		data := pseudoRandom(limit, 1)
		w, err := c.Create("/edge.bin")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data[:limit-1]); err != nil {
			t.Fatal(err)
		}
		if _, err := w.WriteAt(data[limit-1:], limit-1); err != nil {
			t.Fatalf("the write of the last byte: %v", err)
		}
		if err := w.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		assertArrived(t, g, "acme", "/edge.bin", sha256Hex(data), limit)
		f.afterCase(t, "acme", key)
	})

	t.Run("pkg/sftp write of 2 bytes at limit-1", func(t *testing.T) {
		data := pseudoRandom(limit+1, 2)
		w, err := c.Create("/edge-over.bin")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data[:limit-1]); err != nil {
			t.Fatal(err)
		}
		_, err = w.WriteAt(data[limit-1:], limit-1)
		wantStatus(t, "write past the limit", err, sftptest.FXFailure, "maximum file size", "1048577", "1048576")
		if err := w.Close(); err == nil {
			t.Error("close of the over-limit upload succeeded")
		}
		wantFailed(t, g, "acme", "/edge-over.bin", "maximum file size")
		f.afterCase(t, "acme", key)
	})
}

// TestBadInputWrites: truncation, rewinding, sparse and far writes, gaps,
// open flags the gateway does not offer, and concurrent out-of-order and
// overlapping writes.
func TestBadInputWrites(t *testing.T) {
	t.Parallel()
	const limit = 1 << 20
	key := newClientKey(t)
	// Held: recv.csv must stay a received file on its way for the cases
	// that try to change one.
	g := newGateway(t, gatewayOpts{maxFileSize: "1MiB", suppliers: []supplierSpec{{name: "acme", keys: []clientKey{key}, held: true}}})
	g.start()
	f := newFence(t, g, "acme")
	c, _ := dialSFTP(t, g, "acme", key)
	recv, recvSHA := randomFile(t, 64<<10)
	if out, err := g.sftpBatch("acme", key, fmt.Sprintf("put %s recv.csv\n", recv)); err != nil {
		t.Fatalf("sftp: %v\n%s", err, out)
	}
	assertArrived(t, g, "acme", "/recv.csv", recvSHA, 64<<10)

	t.Run("truncate a received file", func(t *testing.T) {
		before := g.lastSeq()
		for _, size := range []int64{0, 10, 1 << 19} {
			err := c.Truncate("/recv.csv", size)
			wantStatus(t, fmt.Sprintf("Truncate(%d)", size), err, sftptest.FXOpUnsupported, "changing the size of a file")
		}
		if _, ok := g.findEvent(before, "request.refused", map[string]string{"reason": "unsupported", "op": "setstat"}); !ok {
			t.Error("no request.refused event for the truncation")
		}
		assertArrived(t, g, "acme", "/recv.csv", recvSHA, 64<<10)
		// Modes and times are accepted and ignored, as clients set them
		// after an upload.
		if err := c.Chmod("/recv.csv", 0o777); err != nil {
			t.Errorf("Chmod: %v", err)
		}
		if err := c.Chtimes("/recv.csv", time.Unix(0, 0), time.Unix(0, 0)); err != nil {
			t.Errorf("Chtimes: %v", err)
		}
		assertArrived(t, g, "acme", "/recv.csv", recvSHA, 64<<10)
		f.afterCase(t, "acme", key)
	})

	t.Run("truncate an open upload", func(t *testing.T) {
		data := pseudoRandom(64<<10, 3)
		w, err := c.Create("/trunc.bin")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
		wantStatus(t, "File.Truncate(0)", w.Truncate(0), sftptest.FXOpUnsupported, "changing the size of a file")
		// The refused truncation changed nothing: the bytes sent stand.
		if err := w.Close(); err != nil {
			t.Fatalf("close after the refused truncation: %v", err)
		}
		assertArrived(t, g, "acme", "/trunc.bin", sha256Hex(data), 64<<10)
		f.afterCase(t, "acme", key)
	})

	t.Run("seek backwards", func(t *testing.T) {
		before := g.lastSeq()
		data := pseudoRandom(64<<10, 4)
		w, err := c.Create("/rewind.bin")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(data); err != nil {
			t.Fatal(err)
		}
		_, err = w.WriteAt([]byte("overwrite"), 0)
		wantStatus(t, "WriteAt(0) after 64 KiB", err, sftptest.FXFailure, "rewrites bytes already received", "65536")
		if err := w.Close(); err == nil {
			t.Error("close of the rewound upload succeeded")
		}
		wantFailed(t, g, "acme", "/rewind.bin", "non-sequential")
		if _, ok := g.findEvent(before, "upload.fail", map[string]string{"reason": "not-sequential"}); !ok {
			t.Error("no upload.fail event with reason not-sequential")
		}
		f.afterCase(t, "acme", key)
	})

	t.Run("far and sparse writes", func(t *testing.T) {
		tests := []struct {
			name string
			off  int64
			want string
		}{
			{"1 TiB", 1 << 40, "maximum file size"},
			{"limit+1", limit + 1, "maximum file size"},
			{"offset overflows", math.MaxInt64 - 3, "invalid offset"},
		}
		for i, tt := range tests {
			p := fmt.Sprintf("/sparse-%d.bin", i)
			w, err := c.Create(p)
			if err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			_, err = w.WriteAt([]byte("sparse!!"), tt.off)
			wantStatus(t, "WriteAt at "+tt.name, err, sftptest.FXFailure, tt.want)
			if took := time.Since(start); took > 2*time.Second {
				t.Errorf("WriteAt at %s took %s to be refused", tt.name, took)
			}
			if err := w.Close(); err == nil {
				t.Errorf("close after a write at %s succeeded", tt.name)
			}
			wantFailed(t, g, "acme", p, tt.want)
		}
		f.afterCase(t, "acme", key)
	})

	t.Run("gap", func(t *testing.T) {
		w, err := c.Create("/gap.bin")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(pseudoRandom(1000, 5)); err != nil {
			t.Fatal(err)
		}
		if _, err := w.WriteAt(pseudoRandom(1000, 6), 3000); err != nil {
			t.Fatalf("a write slightly ahead was refused: %v", err)
		}
		wantStatus(t, "close with a gap", w.Close(), sftptest.FXFailure, "gap", "from offset 1000 to 3000")
		wantFailed(t, g, "acme", "/gap.bin", "gap")
		f.afterCase(t, "acme", key)
	})

	t.Run("oversized packet", func(t *testing.T) {
		// A WRITE of 512 KiB in one packet, over the 256 KiB SFTP servers
		// accept: the session ends, the upload fails, the server lives on.
		big, _ := dialSFTP(t, g, "acme", key, sftp.MaxPacketUnchecked(512<<10))
		w, err := big.Create("/oversized.bin")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := w.Write(pseudoRandom(512<<10, 12)); err == nil {
			t.Error("a 512 KiB packet was accepted")
		}
		tr := wantFailed(t, g, "acme", "/oversized.bin", "refused")
		t.Logf("reason recorded for the oversized packet: %q", tr.Error)
		if _, err := big.Getwd(); err == nil {
			t.Error("the session that sent the oversized packet still answers")
		}
		f.afterCase(t, "acme", key)
	})

	t.Run("open flags", func(t *testing.T) {
		// Appending continues only an interrupted upload (see resume_test.go).
		_, err := c.OpenFile("/recv.csv", os.O_WRONLY|os.O_CREATE|os.O_APPEND)
		wantStatus(t, "open O_APPEND of a received name", err, sftptest.FXOpUnsupported, "appending")
		_, err = c.OpenFile("/recv.csv", os.O_WRONLY|os.O_CREATE|os.O_EXCL)
		wantStatus(t, "open O_EXCL of a received name", err, sftptest.FXFailure, "already exists")
		_, err = c.OpenFile("/recv.csv", os.O_RDONLY)
		wantDenied(t, "open O_RDONLY of a received file", err)
		code, msg := dialRaw(t, g, "acme", key).Status(sftptest.FXPOpen, "/recv.csv", uint32(sftptest.FXFRead), uint32(0))
		wantRaw(t, "raw OPEN for reading", code, msg, sftptest.FXPermissionDenied, "write-only")

		// Read and write at once: the upload works, reading it back does not.
		data := pseudoRandom(10_000, 7)
		rw, err := c.OpenFile("/rw.bin", os.O_RDWR|os.O_CREATE|os.O_TRUNC)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := rw.Write(data); err != nil {
			t.Fatal(err)
		}
		_, err = rw.ReadAt(make([]byte, 100), 0)
		wantDenied(t, "ReadAt on an upload", err)
		if err := rw.Close(); err != nil {
			t.Fatalf("close: %v", err)
		}
		assertArrived(t, g, "acme", "/rw.bin", sha256Hex(data), 10_000)
		f.afterCase(t, "acme", key)
	})

	// writeChunks writes chunks of data at their offsets from several
	// goroutines, in the order given, and returns the errors of the writes
	// and of Close.
	writeChunks := func(t *testing.T, p string, data []byte, chunks [][2]int) (writeErrs []error, closeErr error) {
		t.Helper()
		w, err := c.Create(p)
		if err != nil {
			t.Fatal(err)
		}
		work := make(chan [2]int)
		var mu sync.Mutex
		var wg sync.WaitGroup
		for range 8 {
			wg.Go(func() {
				for ch := range work {
					if _, err := w.WriteAt(data[ch[0]:ch[1]], int64(ch[0])); err != nil {
						mu.Lock()
						writeErrs = append(writeErrs, err)
						mu.Unlock()
					}
				}
			})
		}
		for _, ch := range chunks {
			work <- ch
		}
		close(work)
		wg.Wait()
		return writeErrs, w.Close()
	}
	split := func(size, chunk int) [][2]int {
		var out [][2]int
		for off := 0; off < size; off += chunk {
			out = append(out, [2]int{off, min(off+chunk, size)})
		}
		return out
	}

	t.Run("out of order, complete", func(t *testing.T) {
		data := pseudoRandom(limit-12345, 8)
		chunks := split(len(data), 32<<10)
		rng := rand.New(rand.NewPCG(1, 2))
		rng.Shuffle(len(chunks), func(i, j int) { chunks[i], chunks[j] = chunks[j], chunks[i] })
		// The first chunk goes last, so everything else waits in the window.
		i := slices.IndexFunc(chunks, func(ch [2]int) bool { return ch[0] == 0 })
		chunks = append(append(chunks[:i:i], chunks[i+1:]...), chunks[i])
		writeErrs, closeErr := writeChunks(t, "/shuffled.bin", data, chunks)
		if len(writeErrs) > 0 || closeErr != nil {
			t.Fatalf("out-of-order upload: writes %v, close %v", writeErrs, closeErr)
		}
		assertArrived(t, g, "acme", "/shuffled.bin", sha256Hex(data), int64(len(data)))
		f.afterCase(t, "acme", key)
	})

	overlapping := []struct {
		name  string
		extra [2]int // a chunk overlapping the others
	}{
		{"straddles two chunks", [2]int{16 << 10, 48 << 10}},
		{"inside a chunk", [2]int{40 << 10, 41 << 10}},
		{"same chunk twice", [2]int{64 << 10, 96 << 10}},
		{"first chunk twice", [2]int{0, 32 << 10}},
		{"ends past the next chunk's start", [2]int{100 << 10, 129<<10 + 1}},
	}
	for _, tt := range overlapping {
		t.Run("overlapping: "+tt.name, func(t *testing.T) {
			data := pseudoRandom(256<<10, 9)
			for _, order := range []string{"in order", "extra first", "shuffled"} {
				chunks := split(len(data), 32<<10)
				switch order {
				case "in order":
					chunks = append(chunks, tt.extra)
				case "extra first":
					chunks = append([][2]int{tt.extra}, chunks...)
				case "shuffled":
					chunks = append(chunks, tt.extra)
					rng := rand.New(rand.NewPCG(3, 4))
					rng.Shuffle(len(chunks), func(i, j int) { chunks[i], chunks[j] = chunks[j], chunks[i] })
				}
				p := fmt.Sprintf("/overlap-%s.bin", strings.ReplaceAll(order, " ", "-"))
				writeErrs, closeErr := writeChunks(t, p, data, chunks)
				if len(writeErrs) == 0 && closeErr == nil {
					t.Errorf("%s: an upload with overlapping writes was accepted", order)
				}
				for _, err := range append(writeErrs, closeErr) {
					if err != nil && !strings.Contains(err.Error(), "non-sequential") {
						t.Errorf("%s: error %v does not say non-sequential", order, err)
					}
				}
				wantFailed(t, g, "acme", p, "non-sequential")
			}
			f.afterCase(t, "acme", key)
		})
	}
}

// TestBadInputManyTinyFiles: 10,000 tiny files in one session, 16 at a
// time over one pkg/sftp client, all land and are received. The scans are
// stalled: this is about the SFTP side, and delivering 10,000 files would
// take the suite's whole time budget.
func TestBadInputManyTinyFiles(t *testing.T) {
	t.Parallel()
	const n, workers = 10_000, 16
	g, key := startAcme(t, gatewayOpts{stallScans: true}, supplierSpec{})
	f := newFence(t, g, "acme")
	c, _ := dialSFTP(t, g, "acme", key)

	content := func(i int) []byte { return fmt.Appendf(nil, "row,%05d,%x\n", i, i*7919) }
	next, done := atomic.Int64{}, atomic.Int64{}
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	start := time.Now()
	var laps [5]time.Duration // when each fifth of the files was done
	for range workers {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				p := fmt.Sprintf("/f-%05d.csv", i)
				w, err := c.Create(p)
				if err == nil {
					_, err = w.Write(content(i))
					if cerr := w.Close(); err == nil {
						err = cerr
					}
				}
				if err != nil {
					errs <- fmt.Errorf("%s: %w", p, err)
					return
				}
				if d := done.Add(1); d%(n/5) == 0 {
					laps[d/(n/5)-1] = time.Since(start)
				}
			}
		})
	}
	wg.Wait()
	took := time.Since(start)
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	t.Logf("%d tiny files over one session, %d at a time: %s, %.0f files/s", n, workers, took.Round(time.Millisecond), float64(n)/took.Seconds())
	var prev time.Duration
	for i, lap := range laps {
		if lap > 0 {
			t.Logf("  files %5d-%5d: %.0f files/s", i*n/5, (i+1)*n/5-1, float64(n/5)/(lap-prev).Seconds())
			prev = lap
		}
	}
	if t.Failed() {
		t.FailNow()
	}

	trs := f.settle(t)
	received := 0
	for _, tr := range trs {
		var i int
		if _, err := fmt.Sscanf(tr.Path, "/f-%05d.csv", &i); err != nil {
			continue
		}
		if !isPending(tr) || tr.SHA256 != sha256Hex(content(i)) || tr.Size != int64(len(content(i))) {
			t.Errorf("%s: state %s size %d sha %s", tr.Path, tr.State, tr.Size, tr.SHA256)
			continue
		}
		received++
	}
	if received != n {
		t.Errorf("%d transfers received, want %d", received, n)
	}
	if files := landedFiles(t, g.landingDir); len(files) != n {
		t.Errorf("landing holds %d files, want %d", len(files), n)
	}
	if got := g.metric(`airlock_sftp_uploads_total{outcome="received"}`); got != n {
		t.Errorf(`airlock_sftp_uploads_total{outcome="received"} = %v, want %d`, got, n)
	}
	infos, err := c.ReadDir("/")
	if err != nil || len(infos) != n {
		t.Errorf("listing of the home: %d entries, %v; want %d", len(infos), err, n)
	}
	stillServes(t, g, "acme", key)
}

// sftpWithin runs an OpenSSH batch that must finish within d.
func sftpWithin(t *testing.T, g *gateway, user string, key clientKey, batch string, d time.Duration) (string, error) {
	t.Helper()
	cmd := g.sftpCommand(user, key, batch)
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// sftp runs ssh as a child: on timeout both go, as a process group.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(d):
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		return out.String(), fmt.Errorf("still running after %s", d)
	}
}

// openAndAbandon creates up to n files named prefix-NNN.bin over c and
// leaves them open, some with bytes ahead of a gap. It stops at the first
// refused open, or when an open has waited for 5s (it then stays pending
// until the connection closes), and returns how many files are open.
func openAndAbandon(t *testing.T, c *sftp.Client, prefix string, n int) int {
	t.Helper()
	var opened atomic.Int64
	progress := make(chan error, n)
	go func() {
		for i := range n {
			w, err := c.Create(fmt.Sprintf("%s-%03d.bin", prefix, i))
			if err == nil && i%2 == 0 {
				_, err = w.WriteAt(pseudoRandom(4096, byte(i)), int64(i)*1000)
			}
			if err == nil {
				opened.Add(1)
			}
			progress <- err
			if err != nil {
				return
			}
		}
	}()
	for range n {
		select {
		case err := <-progress:
			if err != nil {
				t.Logf("%s: open %d refused: %v", prefix, opened.Load()+1, err)
				return int(opened.Load())
			}
		case <-time.After(5 * time.Second):
			t.Logf("%s: open %d has waited 5s, with %d files open", prefix, opened.Load()+1, opened.Load())
			return int(opened.Load())
		}
	}
	return int(opened.Load())
}

// TestBadInputAbandonedHandles: files still open when the connection
// drops are interrupted (kept to resume) or, with nothing received,
// failed, and nothing of them lands; while one supplier holds many
// files open, over several sessions, another supplier uploads as usual.
func TestBadInputAbandonedHandles(t *testing.T) {
	t.Parallel()
	key, otherKey := newClientKey(t), newClientKey(t)
	g := newGateway(t, gatewayOpts{suppliers: []supplierSpec{
		{name: "acme", keys: []clientKey{key}},
		{name: "other", keys: []clientKey{otherKey}},
	}})
	g.start()
	f := newFence(t, g, "acme", "other")
	c, conn := dialSFTP(t, g, "acme", key)

	w, err := c.Create("/open.bin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(pseudoRandom(100<<10, 10)); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the 100 KiB to arrive", func() bool {
		return g.metric("airlock_sftp_upload_bytes_total") >= 100<<10
	})
	// Streamed, not yet visible: the bytes sit in a staged object, never
	// under the transfer's landing key while the upload is open. The upload
	// is recorded once it has run a second.
	var tr ledger.Transfer
	eventually(t, 10*time.Second, "the open upload to be recorded", func() bool {
		var ok bool
		tr, ok = transferAt(g.transfers(), "acme", "/open.bin")
		return ok
	})
	if tr.State != ledger.Receiving {
		t.Fatalf("the open upload is %s, want receiving", tr.State)
	} else if _, err := os.Stat(filepath.Join(g.landing, filepath.FromSlash(tr.LandingKey))); !os.IsNotExist(err) {
		t.Errorf("the open upload is visible under its landing key: %v", err)
	}
	if len(landedFiles(t, g.landing)) == 0 {
		t.Error("nothing staged in landing while 100 KiB were sent")
	}

	// Many more files left open, over ten sessions (well under the default
	// max_connections_per_ip of 20). The server may refuse or hold opens
	// past caps of its own; it must not make other suppliers wait.
	held := 1 + openAndAbandon(t, c, "/open-s00", 40)
	conns := []*ssh.Client{conn}
	for i := 1; i < 10; i++ {
		ci, conn := dialSFTP(t, g, "acme", key)
		conns = append(conns, conn)
		held += openAndAbandon(t, ci, fmt.Sprintf("/open-s%02d", i), 40)
	}
	t.Logf("acme holds %d files open over %d sessions", held, len(conns))

	src, sha := randomFile(t, 64<<10)
	start := time.Now()
	if out, err := sftpWithin(t, g, "other", otherKey, fmt.Sprintf("put %s meanwhile.bin\n", src), 15*time.Second); err != nil {
		t.Errorf("one supplier starves the others: while acme holds %d files open over %d sessions, "+
			"another supplier's upload is %v (airlock_sftp_upload_memory_waits_total = %v: it waits for the "+
			"upload memory budget acme holds)\n%s",
			held, len(conns), err, g.metric("airlock_sftp_upload_memory_waits_total"), out)
	} else {
		t.Logf("another supplier's upload meanwhile took %s", time.Since(start).Round(time.Millisecond))
		assertArrived(t, g, "other", "/meanwhile.bin", sha, 64<<10)
	}

	for _, conn := range conns {
		conn.Close() // without closing any file
	}
	acme := 0
	for _, tr := range f.settle(t) {
		if tr.Supplier != "acme" {
			continue
		}
		acme++
		// Cut off: kept to resume if anything arrived, else failed.
		want := ledger.Failed
		if tr.Size > 0 {
			want = ledger.Interrupted
		}
		if tr.State != want || !strings.Contains(tr.Error, "connection lost") {
			t.Errorf("%s: state %s, error %q; want %s, connection lost", tr.Path, tr.State, tr.Error, want)
		}
	}
	// Opens still waiting when the connections closed may have made rows
	// too (failed at once), so there are at least as many as files held.
	if acme < held {
		t.Errorf("acme has %d transfers, want one per open file (%d)", acme, held)
	}
	stillServes(t, g, "acme", key)
}

// TestBadInputIdleOpenHandle: a session idle with a file open is closed by
// the server at the idle timeout, and the upload is interrupted, kept to
// resume.
func TestBadInputIdleOpenHandle(t *testing.T) {
	t.Parallel()
	key := newClientKey(t)
	g := newGateway(t, gatewayOpts{
		sftpExtra: "  idle_timeout: \"2s\"\n",
		suppliers: []supplierSpec{{name: "acme", keys: []clientKey{key}}},
	})
	g.start()
	f := newFence(t, g, "acme")
	c, conn := dialSFTP(t, g, "acme", key)

	w, err := c.Create("/idle.bin")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(pseudoRandom(10<<10, 11)); err != nil {
		t.Fatal(err)
	}
	lastWrite := time.Now()
	tr := g.waitTransfer(t, "acme", "/idle.bin", 15*time.Second, "the idle upload to be interrupted", func(tr ledger.Transfer) bool {
		return tr.State == ledger.Interrupted
	})
	if after := time.Since(lastWrite); after < 2*time.Second || after > 10*time.Second {
		t.Errorf("the idle upload was interrupted %s after the last write, want about 2s", after)
	}
	if !strings.Contains(tr.Error, "idle timeout") || tr.Size != 10<<10 {
		t.Errorf("interrupted idle upload: %q, %d bytes; want the idle timeout named, 10 KiB kept", tr.Error, tr.Size)
	}
	t.Logf("reason recorded for the idle upload: %q", tr.Error)
	// The client finds its session gone.
	if _, err := c.Stat("/"); err == nil {
		t.Error("the idle session still answers")
	}
	if _, err := w.Write([]byte("more")); err == nil {
		t.Error("a write on the idled-out handle succeeded")
	}
	conn.Close()
	f.afterCase(t, "acme", key)
}

// TestBadInputIdleConnections: connections without SFTP traffic for the
// idle timeout do not keep their slots of max_connections_per_ip: neither
// those whose session the server closed for idleness nor those that never
// opened a session. Otherwise three forgotten connections (a script that
// never closes its SSH client) lock the supplier's address out for good.
func TestBadInputIdleConnections(t *testing.T) {
	t.Parallel()
	key := newClientKey(t)
	g := newGateway(t, gatewayOpts{
		sftpExtra: "  idle_timeout: \"2s\"\n  max_connections_per_ip: 3\n",
		suppliers: []supplierSpec{{name: "acme", keys: []clientKey{key}}},
	})
	g.start()
	f := newFence(t, g, "acme")

	tests := []struct {
		name string
		open func(t *testing.T) *ssh.Client
	}{
		{"sessions idled out", func(t *testing.T) *ssh.Client {
			c, conn := dialSFTP(t, g, "acme", key)
			if _, err := c.Getwd(); err != nil {
				t.Fatal(err)
			}
			return conn
		}},
		{"no session opened", func(t *testing.T) *ssh.Client {
			conn, err := sshDial(g, "acme", key)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { conn.Close() })
			return conn
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			eventually(t, 10*time.Second, "a free slot (the previous case's connections to close)", func() bool {
				_, err := g.sftpBatch("acme", key, "ls\n")
				return err == nil
			})
			var conns []*ssh.Client
			for range 3 {
				conns = append(conns, tt.open(t))
			}
			if out, err := g.sftpBatch("acme", key, "ls\n"); err == nil {
				t.Fatalf("a fourth connection was admitted:\n%s", out)
			}
			opened := time.Now()
			closed := make(chan struct{}, len(conns))
			for _, c := range conns {
				go func() { _ = c.Wait(); closed <- struct{}{} }()
			}
			deadline := time.After(10 * time.Second)
			for range conns {
				select {
				case <-closed:
				case <-deadline:
					t.Fatalf("idle connections are still open %s after the idle timeout of 2s: "+
						"they hold the address's slots and a fresh login is refused", time.Since(opened).Round(time.Second))
				}
			}
			eventually(t, 5*time.Second, "a login once the idle connections closed", func() bool {
				_, err := g.sftpBatch("acme", key, "ls\n")
				return err == nil
			})
			for _, c := range conns {
				c.Close()
			}
			eventually(t, 5*time.Second, "the slots to free up", func() bool {
				_, err := g.sftpBatch("acme", key, "ls\n")
				return err == nil
			})
			f.afterCase(t, "acme", key)
		})
	}
}

// TestBadInputLinksAndExtensions: links, renames of received files and
// readlink are refused with a clear status; realpath stays in the home.
func TestBadInputLinksAndExtensions(t *testing.T) {
	t.Parallel()
	key := newClientKey(t)
	// Held: the renames are tried on a received file still on its way.
	g := newGateway(t, gatewayOpts{suppliers: []supplierSpec{{name: "acme", keys: []clientKey{key}, held: true}}})
	g.start()
	f := newFence(t, g, "acme")
	c, _ := dialSFTP(t, g, "acme", key)
	src, sha := randomFile(t, 8<<10)
	if out, err := g.sftpBatch("acme", key, fmt.Sprintf("put %s recv.csv\n", src)); err != nil {
		t.Fatalf("sftp: %v\n%s", err, out)
	}
	rows := len(g.transfers())

	t.Run("pkg/sftp", func(t *testing.T) {
		raw := dialRaw(t, g, "acme", key)
		posixRename := func(from, to string) func() (uint32, string) {
			return func() (uint32, string) { return raw.Status(sftptest.FXPExtended, "posix-rename@openssh.com", from, to) }
		}
		tests := []struct {
			name   string
			do     func() error
			code   uint32
			msg    string                  // checked on pkg/sftp's error, or on raw's answer
			raw    func() (uint32, string) // the same request, raw, for codes pkg/sftp drops the message of
			reason string                  // of the request.refused audit event
		}{
			{"Symlink", func() error { return c.Symlink("/recv.csv", "/sym.csv") }, sftptest.FXOpUnsupported, "links: not supported", nil, "unsupported"},
			{"Link", func() error { return c.Link("/recv.csv", "/hard.csv") }, sftptest.FXOpUnsupported, "links: not supported", nil, "unsupported"},
			{"Symlink out of the home", func() error { return c.Symlink("/recv.csv", "../../sym.csv") }, sftptest.FXPermissionDenied, "leaves the home directory",
				func() (uint32, string) { return raw.Status(sftptest.FXPSymlink, "../../sym.csv", "/recv.csv") }, "escape"},
			{"Link to outside", func() error { return c.Link("../../../etc/passwd", "/passwd") }, sftptest.FXPermissionDenied, "leaves the home directory",
				func() (uint32, string) {
					return raw.Status(sftptest.FXPExtended, "hardlink@openssh.com", "../../../etc/passwd", "/passwd")
				}, "escape"},
			{"PosixRename of a received file", func() error { return c.PosixRename("/recv.csv", "/moved.csv") }, sftptest.FXPermissionDenied, "already received",
				posixRename("/recv.csv", "/moved.csv"), "permission"},
			{"Rename of a received file", func() error { return c.Rename("/recv.csv", "/moved.csv") }, sftptest.FXPermissionDenied, "already received",
				func() (uint32, string) { return raw.Status(sftptest.FXPRename, "/recv.csv", "/moved.csv") }, "permission"},
			{"PosixRename out of the home", func() error { return c.PosixRename("/recv.csv", "../moved.csv") }, sftptest.FXPermissionDenied, "leaves the home directory",
				posixRename("/recv.csv", "../moved.csv"), "escape"},
			{"ReadLink", func() error { _, err := c.ReadLink("/recv.csv"); return err }, sftptest.FXOpUnsupported, "not supported", nil, "unsupported"},
		}
		for _, tt := range tests {
			before := g.lastSeq()
			err := tt.do()
			if tt.raw == nil {
				wantStatus(t, tt.name, err, tt.code, tt.msg)
			} else {
				wantDenied(t, tt.name, err)
				code, msg := tt.raw()
				wantRaw(t, tt.name+" (raw)", code, msg, tt.code, tt.msg)
			}
			if _, ok := g.findEvent(before, "request.refused", map[string]string{"reason": tt.reason}); !ok {
				t.Errorf("%s: no request.refused event with reason %s", tt.name, tt.reason)
			}
		}
		for _, p := range []string{"..", "/..", "../../..", "/a/../../b/..", "."} {
			if got, err := c.RealPath(p); err != nil || got != "/" {
				t.Errorf("RealPath(%q) = %q, %v; want /", p, got, err)
			}
		}
		if got, err := c.RealPath("../etc/passwd"); err != nil || got != "/etc/passwd" {
			t.Errorf("RealPath(../etc/passwd) = %q, %v; want /etc/passwd (inside the home)", got, err)
		}
		f.afterCase(t, "acme", key)
	})

	t.Run("OpenSSH", func(t *testing.T) {
		for _, cmd := range []string{"ln recv.csv hard.csv", "ln -s recv.csv sym.csv", "rename recv.csv moved.csv"} {
			if out, err := g.sftpBatch("acme", key, cmd+"\n"); err == nil {
				t.Errorf("%q succeeded:\n%s", cmd, out)
			}
		}
		f.afterCase(t, "acme", key)
	})

	// The received file is where it was; no link or rename made a row.
	assertArrived(t, g, "acme", "/recv.csv", sha, 8<<10)
	for _, tr := range g.transfers() {
		if !strings.HasPrefix(tr.Path, "/alive-") && tr.Path != "/recv.csv" {
			t.Errorf("a refused request made a transfer: %+v", tr)
		}
	}
	if n := len(g.transfers()); n != rows+2 {
		t.Errorf("%d transfer rows, want %d", n, rows+2)
	}
}

// TestBadInputConnectionCap: with max_connections_per_ip 3, a fourth
// connection from the address is refused while three are open, and
// admitted again once one closes.
func TestBadInputConnectionCap(t *testing.T) {
	t.Parallel()
	key := newClientKey(t)
	g := newGateway(t, gatewayOpts{
		sftpExtra: "  max_connections_per_ip: 3\n",
		suppliers: []supplierSpec{{name: "acme", keys: []clientKey{key}}},
	})
	g.start()
	f := newFence(t, g, "acme")

	var held []*ssh.Client
	for range 3 {
		c, conn := dialSFTP(t, g, "acme", key)
		if _, err := c.Getwd(); err != nil {
			t.Fatal(err)
		}
		held = append(held, conn)
	}
	if out, err := g.sftpBatch("acme", key, "ls\n"); err == nil {
		t.Fatalf("a fourth session (OpenSSH) was admitted:\n%s", out)
	}
	if _, _, err := trySFTP(t, g, "acme", key); err == nil {
		t.Fatal("a fourth session (pkg/sftp) was admitted")
	}
	if got := g.metric(`airlock_sftp_connections_refused_total{reason="too-many-connections-from-ip"}`); got < 2 {
		t.Errorf("refused-connection metric = %v, want at least 2", got)
	}

	held[0].Close()
	eventually(t, 10*time.Second, "a session to be admitted after one closed", func() bool {
		_, err := g.sftpBatch("acme", key, "ls\n")
		return err == nil
	})
	// Still capped at three: two held plus one more, once the server has
	// seen the probing session above go.
	var c *sftp.Client
	eventually(t, 10*time.Second, "the probing session's slot to free up", func() bool {
		var err error
		c, _, err = trySFTP(t, g, "acme", key)
		return err == nil
	})
	if _, err := c.Getwd(); err != nil {
		t.Fatal(err)
	}
	if out, err := g.sftpBatch("acme", key, "ls\n"); err == nil {
		t.Fatalf("a fourth session was admitted after the reshuffle:\n%s", out)
	}
	c.Close()
	held[1].Close()
	eventually(t, 10*time.Second, "a slot to free up", func() bool {
		_, err := g.sftpBatch("acme", key, "ls\n")
		return err == nil
	})
	f.afterCase(t, "acme", key)
}

// TestBadInputExpiredKey: a key past its expiry date is refused at login
// and audited with reason key-expired; the supplier's other key works.
func TestBadInputExpiredKey(t *testing.T) {
	t.Parallel()
	good, expired := newClientKey(t), newClientKey(t)
	expired.expires = "2020-01-01"
	g := newGateway(t, gatewayOpts{suppliers: []supplierSpec{{name: "acme", keys: []clientKey{good, expired}}}})
	g.start()
	f := newFence(t, g, "acme")

	before := g.lastSeq()
	out, err := g.sftpBatch("acme", expired, "ls\n")
	if err == nil || !strings.Contains(out, "Permission denied") {
		t.Fatalf("login with the expired key: %v\n%s", err, out)
	}
	ev, ok := g.findEvent(before, "auth.fail", map[string]string{"reason": "key-expired"})
	if !ok || ev.Actor != "acme" || ev.RemoteIP != "127.0.0.1" {
		t.Fatalf("no auth.fail event with reason key-expired (found %+v)", ev)
	}
	if _, _, err := trySFTP(t, g, "acme", expired); err == nil {
		t.Fatal("pkg/sftp logged in with the expired key")
	}
	if got := g.metric(`airlock_sftp_auth_failures_total{reason="key-expired"}`); got < 2 {
		t.Errorf("key-expired auth failures = %v, want at least 2", got)
	}
	if _, ok := g.findEvent(before, "auth.ok", nil); ok {
		t.Error("an auth.ok event was recorded for the expired key")
	}
	f.afterCase(t, "acme", good)
}
