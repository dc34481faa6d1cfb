package integration

// The ingestion pipeline end to end: what happens to an upload after it is
// received (scan, quarantine or delivery, checksum, removal from landing,
// notifications, receipt), against real peers: the OpenSSH client,
// versitygw, clamd, an SMTP server and a webhook receiver.

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/testpeer"
)

// sourceFile writes content to a file named name in a fresh directory and
// returns its path and sha256.
func sourceFile(t *testing.T, name, content string) (string, string) {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	writeFile(t, p, content)
	return p, sha256Hex([]byte(content))
}

// TestPipelineDeliversCleanFile: a clean file uploaded with OpenSSH sftp
// reaches an S3 destination with its sha256 and leaves landing; the
// webhook (signed), the supplier and the operators (by email; the
// supplier's without the bucket's name) and the supplier's receipt in its
// SFTP home tell of it; the metrics count it; the audit chain verifies.
func TestPipelineDeliversCleanFile(t *testing.T) {
	t.Parallel()
	const bucket = "acme-private-bucket"
	s3 := startVersity(t, bucket)
	box, hook := startMailbox(t), startWebhookReceiver(t)
	g, key := startAcme(t, gatewayOpts{env: s3.Env(), mail: box, webhook: hook}, supplierSpec{dest: s3.dest(bucket, "inbound/acme")})
	src, sha := randomFile(t, smallSize)
	g.put(t, "acme", key, map[string]string{"2026/data.csv": src})

	tr := assertArrived(t, g, "acme", "/2026/data.csv", sha, smallSize)
	if got := objects(t, filepath.Join(s3.Root, bucket)); len(got) != 1 || got["inbound/acme/2026/data.csv"] != sha {
		t.Errorf("the bucket holds %v, want only inbound/acme/2026/data.csv with sha256 %s", got, sha)
	}
	if files := landedFiles(t, g.landingDir); len(files) != 0 {
		t.Errorf("landing still holds %v", files)
	}
	if !strings.HasPrefix(tr.ScanResult, "clean") || !strings.Contains(tr.Destination, bucket+"/inbound/acme/2026/data.csv") {
		t.Errorf("delivered row: scan_result %q, destination %q", tr.ScanResult, tr.Destination)
	}

	t.Run("webhook", func(t *testing.T) {
		c := hook.waitCall(t, "transfer.delivered", tr.ID)
		if !c.SignatureOK {
			t.Errorf("the webhook's signature does not verify under the configured secret:\n%s", c.Body)
		}
		p := c.Payload
		if c.Event != p.Event || c.Delivery == "" || c.Delivery != p.DeliveryID || p.SentAt.IsZero() {
			t.Errorf("headers X-Airlock-Event %q, X-Airlock-Delivery %q disagree with the body:\n%s", c.Event, c.Delivery, c.Body)
		}
		tp := p.Transfer
		if tp.Supplier != "acme" || tp.Path != "/2026/data.csv" || tp.Size != smallSize || tp.SHA256 != sha ||
			tp.ScanResult != tr.ScanResult || tp.Destination != tr.Destination || tp.Error != "" || tp.At.IsZero() {
			t.Errorf("webhook transfer fields:\n%s", c.Body)
		}
		if n := len(hook.received()); n != 1 {
			t.Errorf("%d webhook calls, want 1", n)
		}
	})
	t.Run("email", func(t *testing.T) {
		supplierMail := box.waitMail(t, supplierEmail("acme"), tr.ID, "data.csv", sha)
		opsMail := box.waitMail(t, operatorEmail, tr.ID, bucket)
		for _, secret := range []string{bucket, s3.Addr, "inbound/acme", operatorEmail} {
			if strings.Contains(supplierMail, secret) {
				t.Errorf("the supplier's email gives away %q:\n%s", secret, supplierMail)
			}
		}
		if supplierMail == opsMail {
			t.Error("supplier and operators got the same message")
		}
	})
	t.Run("receipt", func(t *testing.T) {
		rc := g.receipt(t, "acme", key, "/2026/data.csv")
		if rc.TransferID != tr.ID || rc.Path != "/2026/data.csv" || rc.Size != smallSize || rc.SHA256 != sha ||
			rc.Outcome != "delivered" || rc.ReceivedAt.IsZero() || rc.SettledAt.Before(rc.ReceivedAt) {
			t.Errorf("receipt: %+v", rc)
		}
		// The supplier's view: the file it sent, still listed; the receipt
		// is served by name, not listed.
		out, err := g.sftpBatch("acme", key, "ls -1 2026\n")
		if err != nil || strings.Contains(out, "data.csv.receipt.json") || !strings.Contains(out, "data.csv\n") {
			t.Errorf("listing of 2026/: %v\n%s", err, out)
		}
	})
	t.Run("metrics and readiness", func(t *testing.T) {
		for series, want := range map[string]float64{
			`airlock_scan_results_total{verdict="clean"}`:          1,
			`airlock_transfer_outcomes_total{outcome="delivered"}`: 1,
			"airlock_delivery_latency_seconds_count":               1,
		} {
			if got := g.metric(series); got != want {
				t.Errorf("%s = %v, want %v", series, got, want)
			}
		}
		code, ready := g.readyz(t)
		if code != 200 || !ready.Ready || ready.Checks["scanner"] != "ok" ||
			!strings.Contains(ready.Notes["scanner"], "builtin") || !strings.Contains(ready.Notes["scanner"], "not an antivirus") {
			t.Errorf("/readyz: %d %+v; want ready with a note that the builtin scanner is not an antivirus", code, ready)
		}
	})
	g.auditVerifies(t)
}

// TestPipelineQuarantine: with a real clamd, infected files are
// quarantined under <supplier>/<transfer id>/<name>, not delivered, and
// everyone is told; an operator lists them, releases one (the rescan finds
// it infected again: it stays), releases it without a rescan (delivered,
// audited with both reasons) and deletes another for good.
func TestPipelineQuarantine(t *testing.T) {
	t.Parallel()
	clamd := startClamd(t)
	box, hook := startMailbox(t), startWebhookReceiver(t)
	// Released at once: the approval of releases is TestQuarantineReleaseApproval's.
	g, key := startAcme(t, gatewayOpts{clamd: clamd.addr, mail: box, webhook: hook, extra: "quarantine_release_approvals: 0\n"}, supplierSpec{})
	eicarFile, eicarSHA := sourceFile(t, "eicar.com", eicar)
	blocked, err := os.ReadFile("../../internal/scan/testdata/blocked.txt")
	if err != nil {
		t.Fatal(err)
	}
	blockedFile, blockedSHA := sourceFile(t, "blocked.txt", string(blocked))
	cleanFile, cleanSHA := sourceFile(t, "clean.txt", "x"+eicar) // EICAR only counts at the start
	g.put(t, "acme", key, map[string]string{"eicar.com": eicarFile, "blocked.txt": blockedFile, "clean.txt": cleanFile})

	clean := assertArrived(t, g, "acme", "/clean.txt", cleanSHA, int64(len(eicar)+1))
	if !strings.Contains(clean.ScanResult, "clamd") {
		t.Errorf("clean.txt was scanned by %q, want clamd", clean.ScanResult)
	}
	infected := map[string]ledger.Transfer{}
	for _, f := range []struct{ name, sha, signature string }{
		{"eicar.com", eicarSHA, "Airlock.Test.EICAR.UNOFFICIAL"},
		{"blocked.txt", blockedSHA, "Airlock.Test.Blocked.UNOFFICIAL"},
	} {
		tr := assertQuarantined(t, g, "/"+f.name, f.sha)
		if !strings.Contains(tr.ScanResult, "infected: "+f.signature) {
			t.Errorf("%s: scan result %q, want infected: %s", f.name, tr.ScanResult, f.signature)
		}
		if c := hook.waitCall(t, "transfer.quarantined", tr.ID); !c.SignatureOK || c.Payload.Transfer.ScanResult != tr.ScanResult {
			t.Errorf("webhook for %s: signature ok %v, body %s", f.name, c.SignatureOK, c.Body)
		}
		box.waitMail(t, supplierEmail("acme"), tr.ID, "quarantine")
		box.waitMail(t, operatorEmail, tr.ID, f.signature)
		if rc := g.receipt(t, "acme", key, "/"+f.name); rc.Outcome != "quarantined" || rc.SHA256 != f.sha {
			t.Errorf("receipt of %s: %+v", f.name, rc)
		}
		infected[f.name] = tr
	}
	for series, want := range map[string]float64{
		`airlock_scan_results_total{verdict="infected"}`:         2,
		`airlock_scan_results_total{verdict="clean"}`:            1,
		`airlock_transfer_outcomes_total{outcome="quarantined"}`: 2,
	} {
		if got := g.metric(series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}

	out, errOut, err := g.airlock("quarantine", "list", "--json")
	var listed []ledger.Transfer
	if err != nil || json.Unmarshal([]byte(out), &listed) != nil || len(listed) != 2 {
		t.Fatalf("quarantine list --json: %v %s\n%s", err, errOut, out)
	}
	for _, tr := range listed {
		if want := infected[filepath.Base(tr.Path)]; tr.ID != want.ID || tr.State != ledger.Quarantined {
			t.Errorf("quarantine list shows %+v", tr)
		}
	}

	eicarTr := infected["eicar.com"]
	t.Run("release with a rescan", func(t *testing.T) {
		seq := g.lastSeq()
		if out, errOut, err := g.airlock("quarantine", "release", eicarTr.ID, "--reason", "supplier says it is a false positive"); err != nil {
			t.Fatalf("release: %v\n%s%s", err, out, errOut)
		}
		g.waitEvent(t, seq, "transfer.quarantined", eicarTr.ID, nil)
		tr := assertQuarantined(t, g, "/eicar.com", eicarSHA)
		if !strings.Contains(tr.ScanResult, "Airlock.Test.EICAR") {
			t.Errorf("after the rescan: %q", tr.ScanResult)
		}
		ev := g.waitEvent(t, seq, "quarantine.release", eicarTr.ID, map[string]string{"reason": "false positive", "skip_rescan": "false"})
		if !strings.HasPrefix(ev.Actor, "operator") {
			t.Errorf("quarantine.release actor %q", ev.Actor)
		}
	})
	t.Run("release without a rescan", func(t *testing.T) {
		seq := g.lastSeq()
		if out, errOut, err := g.airlock("quarantine", "release", eicarTr.ID, "--reason", "test file, wanted downstream", "--skip-rescan"); err != nil {
			t.Fatalf("release --skip-rescan: %v\n%s%s", err, out, errOut)
		}
		tr := assertArrived(t, g, "acme", "/eicar.com", eicarSHA, int64(len(eicar)))
		if !strings.Contains(tr.ScanResult, "without a rescan") {
			t.Errorf("delivered unscanned, the scan result says %q", tr.ScanResult)
		}
		if _, err := os.Stat(g.quarantined(tr)); !os.IsNotExist(err) {
			t.Errorf("the released file is still in quarantine: %v", err)
		}
		g.waitEvent(t, seq, "quarantine.release", eicarTr.ID, map[string]string{"reason": "wanted downstream", "skip_rescan": "true"})
		hook.waitCall(t, "transfer.delivered", eicarTr.ID)
	})
	t.Run("delete", func(t *testing.T) {
		tr := infected["blocked.txt"]
		seq := g.lastSeq()
		if out, errOut, err := g.airlock("quarantine", "delete", tr.ID, "--reason", "malware, not wanted"); err != nil {
			t.Fatalf("delete: %v\n%s%s", err, out, errOut)
		}
		if _, err := os.Stat(g.quarantined(tr)); !os.IsNotExist(err) {
			t.Errorf("the deleted file's bytes are still in quarantine: %v", err)
		}
		after := newestAt(t, g, "acme", "/blocked.txt")
		if after.State != ledger.Quarantined || after.Destination != "" {
			t.Errorf("after delete: state %s, destination %q; want quarantined with no location", after.State, after.Destination)
		}
		g.waitEvent(t, seq, "quarantine.delete", tr.ID, map[string]string{"reason": "malware"})
		if _, errOut, err := g.airlock("quarantine", "release", tr.ID, "--reason", "changed my mind"); err == nil || !strings.Contains(errOut, "deleted") {
			t.Errorf("release of a deleted file: %v %s", err, errOut)
		}
	})
	if _, err := os.Stat(g.destFile("acme", "/blocked.txt")); !os.IsNotExist(err) {
		t.Errorf("blocked.txt reached the destination: %v", err)
	}
	g.auditVerifies(t)
}

// quarantined is where the quarantine store (a directory in the tree)
// keeps tr's bytes: <supplier>/<transfer id>/<path as uploaded>.
func (g *gateway) quarantined(tr ledger.Transfer) string {
	return filepath.Join(g.dir, "state", "quarantine", tr.Supplier, tr.ID, filepath.FromSlash(strings.TrimPrefix(tr.Path, "/")))
}

// assertQuarantined waits (bounded) for acme's upload at p to be
// quarantined, and checks it is held in quarantine with its bytes, and
// neither in landing nor at the destination.
func assertQuarantined(t *testing.T, g *gateway, p, sha string) ledger.Transfer {
	t.Helper()
	tr := g.waitTransfer(t, "acme", p, 20*time.Second, "the upload to be quarantined", func(tr ledger.Transfer) bool {
		return tr.State == ledger.Quarantined
	})
	if got := fileSHA256(t, g.quarantined(tr)); got != sha {
		t.Errorf("quarantined bytes of %s have sha256 %s, want %s", p, got, sha)
	}
	if !strings.HasSuffix(tr.Destination, "acme/"+tr.ID+p) {
		t.Errorf("quarantined %s: location %q, want …/acme/%s%s", p, tr.Destination, tr.ID, p)
	}
	for what, where := range map[string]string{"landing": g.landedPath(tr), "the destination": g.destFile("acme", p)} {
		if _, err := os.Stat(where); !os.IsNotExist(err) {
			t.Errorf("quarantined %s is in %s (%v)", p, what, err)
		}
	}
	return tr
}

// TestPipelineDestinationOutage: while the S3 destination is down, files
// wait in delivering with the error recorded, never failed and never
// delivered; once it is back each is delivered exactly once, with its
// sha256, and nothing is left in landing.
func TestPipelineDestinationOutage(t *testing.T) {
	t.Parallel()
	const files, outage = 10, 30 * time.Second
	s3 := startVersity(t, "dest")
	g, key := startAcme(t, gatewayOpts{env: s3.Env(), pipeline: "  retry_backoff: 1s\n  max_backoff: 4s\n"},
		supplierSpec{dest: s3.dest("dest", "in")})
	uploads := map[string]string{}
	shas := map[string]string{}
	for i := range files {
		src, sha := randomFile(t, int64(10<<10+i))
		name := fmt.Sprintf("f-%02d.bin", i)
		uploads[name], shas["in/"+name] = src, sha
	}

	s3.Stop()
	down := time.Now()
	g.put(t, "acme", key, uploads)
	for time.Since(down) < outage {
		for _, tr := range g.transfers() {
			if !isPending(tr) {
				t.Fatalf("with the destination down %s is %s\n%s", tr.Path, tr.State, g.diagnosis(g.transfers()))
			}
		}
		time.Sleep(time.Second)
	}
	trs := g.transfers()
	for _, tr := range trs {
		if tr.State != ledger.Delivering || tr.Error == "" {
			t.Errorf("after %s of outage %s is %s with error %q; want delivering with the error", outage, tr.Path, tr.State, tr.Error)
		}
	}
	if len(trs) != files {
		t.Fatalf("%d transfers, want %d", len(trs), files)
	}

	s3.Start()
	g.waitRows(t, 30*time.Second, "every file to be delivered once the destination is back", func(trs []ledger.Transfer) bool {
		return !slices.ContainsFunc(trs, func(tr ledger.Transfer) bool { return tr.State != ledger.Delivered })
	})
	for name, src := range uploads {
		assertArrived(t, g, "acme", "/"+name, fileSHA256(t, src), int64(len(readFile(t, src))))
	}
	got := objects(t, filepath.Join(s3.Root, "dest"))
	if len(got) != files {
		t.Errorf("the bucket holds %d objects, want %d: %v", len(got), files, got)
	}
	for k, sha := range shas {
		if got[k] != sha {
			t.Errorf("object %s: sha256 %q, want %s", k, got[k], sha)
		}
	}
	for _, tr := range g.transfers() {
		if n := countEvents(g.eventsOf(tr.ID), "transfer.delivered"); n != 1 {
			t.Errorf("%s was delivered %d times", tr.Path, n)
		}
	}
	if got := g.metric(`airlock_transfer_outcomes_total{outcome="delivered"}`); got != files {
		t.Errorf(`airlock_transfer_outcomes_total{outcome="delivered"} = %v, want %d`, got, files)
	}
	if got := g.metric(`airlock_job_retries_total{kind="ingest"}`); got < files {
		t.Errorf(`airlock_job_retries_total{kind="ingest"} = %v, want at least one retry per file`, got)
	}
	if files := landedFiles(t, g.landingDir); len(files) != 0 {
		t.Errorf("landing still holds %v", files)
	}
	g.auditVerifies(t)
}

func readFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func countEvents(evs []ledger.Event, kind string) int {
	n := 0
	for _, ev := range evs {
		if ev.Kind == kind {
			n++
		}
	}
	return n
}

// TestPipelineWaitsForClamd: with clamd down, uploads wait in scanning
// with the error recorded, and are not delivered; readiness says the
// scanner is down. Once clamd is back they are scanned and delivered.
func TestPipelineWaitsForClamd(t *testing.T) {
	t.Parallel()
	clamd := startClamd(t)
	g, key := startAcme(t, gatewayOpts{clamd: clamd.addr, pipeline: "  retry_backoff: 1s\n  max_backoff: 2s\n"}, supplierSpec{})
	if code, ready := g.readyz(t); code != 200 || ready.Notes["scanner"] != "clamd at "+clamd.addr {
		t.Errorf("/readyz with clamd up: %d %+v", code, ready)
	}

	clamd.stop()
	uploads := map[string]string{}
	for i := range 3 {
		uploads[fmt.Sprintf("f-%d.bin", i)], _ = randomFile(t, int64(20<<10+i))
	}
	g.put(t, "acme", key, uploads)
	g.waitRows(t, 15*time.Second, "every file to wait in scanning with clamd's error", func(trs []ledger.Transfer) bool {
		return len(trs) == len(uploads) && !slices.ContainsFunc(trs, func(tr ledger.Transfer) bool {
			return tr.State != ledger.Scanning || !strings.Contains(tr.Error, "clamd")
		})
	})
	if code, ready := g.readyz(t); code != 503 || ready.Ready || ready.Checks["scanner"] == "ok" {
		t.Errorf("/readyz with clamd down: %d %+v; want 503 naming the scanner", code, ready)
	}
	// A while longer: still waiting, still nothing delivered.
	time.Sleep(3 * time.Second)
	for _, tr := range g.transfers() {
		if tr.State != ledger.Scanning || tr.Attempts < 2 {
			t.Errorf("with clamd down %s is %s after %d attempts; want scanning, retried", tr.Path, tr.State, tr.Attempts)
		}
	}
	if files := landedFiles(t, g.specs["acme"].dest.dir); len(files) != 0 {
		t.Errorf("delivered without a scan: %v", files)
	}

	clamd.start()
	for name, src := range uploads {
		tr := assertArrived(t, g, "acme", "/"+name, fileSHA256(t, src), int64(len(readFile(t, src))))
		if !strings.HasPrefix(tr.ScanResult, "clean") || !strings.Contains(tr.ScanResult, "clamd") {
			t.Errorf("%s: scan result %q", name, tr.ScanResult)
		}
	}
	if code, _ := g.readyz(t); code != 200 {
		t.Errorf("/readyz once clamd is back: %d", code)
	}
	g.auditVerifies(t)
}

// TestPipelineKMS: a supplier's destination kms_key reaches S3 as SSE-KMS
// headers on every request that creates the delivered object: a PutObject
// or CreateMultipartUpload when the file is streamed from a local landing
// store, the CopyObject when S3 copies it from an S3 landing store; and
// on none of the landing store's own writes. versitygw accepts the headers
// without keeping them, so a proxy in front of it records what was sent.
func TestPipelineKMS(t *testing.T) {
	t.Parallel()
	const kmsKey = "arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	s3 := startVersity(t, "landing", "dest")
	proxy := testpeer.StartRecordingProxy(t, s3.Addr)
	small, smallSHA := randomFile(t, 100<<10)
	large, largeSHA := randomFile(t, 20<<20) // more than one 8 MiB part when streamed
	tests := []struct {
		name       string
		s3Landing  bool
		serverSide bool
	}{
		{"streamed from a local landing store", false, false},
		{"copied by S3 from an S3 landing store", true, true},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			prefix := fmt.Sprintf("acme-%d", i)
			opts := gatewayOpts{env: s3.Env()}
			if tt.s3Landing {
				opts.landing, opts.landingDir = s3.destVia(proxy.Addr, "landing", "").url, filepath.Join(s3.Root, "landing")
			}
			dest := s3.destVia(proxy.Addr, "dest", prefix)
			dest.kmsKey = kmsKey
			g, key := startAcme(t, opts, supplierSpec{dest: dest})
			g.put(t, "acme", key, map[string]string{"small.bin": small, "large.bin": large})
			tr := assertArrived(t, g, "acme", "/small.bin", smallSHA, 100<<10)
			assertArrived(t, g, "acme", "/large.bin", largeSHA, 20<<20)

			creates, copies := 0, 0
			for _, r := range proxy.Requests() {
				writes := r.Method == "PUT" && !r.URL.Query().Has("partNumber") || r.Method == "POST" && r.URL.Query().Has("uploads")
				sse, kmsID := r.Header.Get("X-Amz-Server-Side-Encryption"), r.Header.Get("X-Amz-Server-Side-Encryption-Aws-Kms-Key-Id")
				switch {
				case writes && strings.HasPrefix(r.URL.Path, "/dest/"+prefix+"/"):
					creates++
					if r.Header.Get("X-Amz-Copy-Source") != "" {
						copies++
					}
					if sse != "aws:kms" || kmsID != kmsKey {
						t.Errorf("%s %s went out with SSE %q, key %q; want aws:kms, %s", r.Method, r.URL.Path, sse, kmsID, kmsKey)
					}
				case strings.HasPrefix(r.URL.Path, "/landing/") && (sse != "" || kmsID != ""):
					t.Errorf("a landing write carries the destination's SSE-KMS: %s %s", r.Method, r.URL.Path)
				}
			}
			if creates < 2 {
				t.Errorf("%d requests created objects under dest/%s, want at least 2 (one per file)", creates, prefix)
			}
			if got := copies > 0; got != tt.serverSide {
				t.Errorf("%d of the requests were S3 CopyObject; server-side copy expected: %v", copies, tt.serverSide)
			}
			if !strings.Contains(tr.Destination, "dest/"+prefix+"/small.bin") {
				t.Errorf("destination %q", tr.Destination)
			}
		})
	}
}

// TestTransfersRetry: a delivery that keeps failing fails the transfer
// (max_attempts) with the last error, and everyone is told; once the cause
// is fixed, `airlock transfers retry` delivers it. Only a failed transfer
// can be retried.
func TestTransfersRetry(t *testing.T) {
	t.Parallel()
	box, hook := startMailbox(t), startWebhookReceiver(t)
	// The destination's parent is a regular file: as root, permissions
	// would not stop the delivery, this does.
	blocker := filepath.Join(t.TempDir(), "blocker")
	writeFile(t, blocker, "not a directory\n")
	dest := filepath.Join(blocker, "acme")
	g, key := startAcme(t, gatewayOpts{mail: box, webhook: hook, pipeline: "  max_attempts: 2\n  retry_backoff: 1s\n  max_backoff: 1s\n"},
		supplierSpec{dest: destination{url: dest, dir: dest}})
	src, sha := randomFile(t, smallSize)
	g.put(t, "acme", key, map[string]string{"data.csv": src})

	tr := g.waitTransfer(t, "acme", "/data.csv", 20*time.Second, "the delivery to fail", func(tr ledger.Transfer) bool {
		return tr.State == ledger.Failed
	})
	if !strings.Contains(tr.Error, "not a directory") {
		t.Errorf("failed with %q, want the last error (not a directory)", tr.Error)
	}
	if c := hook.waitCall(t, "transfer.failed", tr.ID); c.Payload.Transfer.Error != tr.Error || !c.SignatureOK {
		t.Errorf("webhook of the failure: %s", c.Body)
	}
	if mail := box.waitMail(t, supplierEmail("acme"), tr.ID); strings.Contains(mail, "not a directory") || strings.Contains(mail, blocker) {
		t.Errorf("the supplier's email gives away the error:\n%s", mail)
	}
	box.waitMail(t, operatorEmail, tr.ID, "not a directory")
	if rc := g.receipt(t, "acme", key, "/data.csv"); rc.Outcome != "failed" || strings.Contains(rc.Note, "directory") {
		t.Errorf("receipt of the failed transfer: %+v", rc)
	}
	if got := g.metric(`airlock_transfer_outcomes_total{outcome="failed"}`); got != 1 {
		t.Errorf(`airlock_transfer_outcomes_total{outcome="failed"} = %v, want 1`, got)
	}
	if _, err := os.Stat(g.landedPath(tr)); err != nil {
		t.Errorf("the failed transfer's bytes are gone from landing: %v", err)
	}

	if err := os.Remove(blocker); err != nil {
		t.Fatal(err)
	}
	seq := g.lastSeq()
	if out, errOut, err := g.airlock("transfers", "retry", tr.ID); err != nil || !strings.Contains(out, "queued again") {
		t.Fatalf("transfers retry: %v\n%s%s", err, out, errOut)
	}
	assertArrived(t, g, "acme", "/data.csv", sha, smallSize)
	if ev := g.waitEvent(t, seq, "transfer.retry", tr.ID, nil); !strings.HasPrefix(ev.Actor, "operator") {
		t.Errorf("transfer.retry actor %q", ev.Actor)
	}
	hook.waitCall(t, "transfer.delivered", tr.ID)

	for _, id := range []string{tr.ID, "nosuchtransfer"} {
		if out, errOut, err := g.airlock("transfers", "retry", id); err == nil {
			t.Errorf("transfers retry %s succeeded: %s", id, out)
		} else if !strings.Contains(errOut, "only a failed transfer") && !strings.Contains(errOut, "not found") {
			t.Errorf("transfers retry %s: %s", id, errOut)
		}
	}
	g.auditVerifies(t)
}

// TestPipelineScansOnce: a file that scanned clean is not scanned again
// while its delivery is retried: the retries are the delivery's, and a
// multi-GB file is not read through clamd again for every attempt.
func TestPipelineScansOnce(t *testing.T) {
	t.Parallel()
	g, key := startAcme(t, gatewayOpts{pipeline: "  retry_backoff: 1s\n  max_backoff: 1s\n"}, supplierSpec{held: true})
	src, _ := randomFile(t, smallSize)
	g.put(t, "acme", key, map[string]string{"data.csv": src})
	g.waitRows(t, 20*time.Second, "three failed delivery attempts", func([]ledger.Transfer) bool {
		return g.metric(`airlock_job_retries_total{kind="ingest"}`) >= 3
	})
	tr := newestAt(t, g, "acme", "/data.csv")
	if scans := g.metric(`airlock_scan_results_total{verdict="clean"}`); scans != 1 || tr.State != ledger.Delivering {
		t.Errorf("after 3 failed deliveries the file was scanned %v times and is %s (attempts %d); "+
			"want scanned once and delivering\n%s", scans, tr.State, tr.Attempts, g.diagnosis([]ledger.Transfer{tr}))
	}
}
