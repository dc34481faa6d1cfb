package integration

import (
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/testpeer"
)

// TestTamperedLedgerIsReported: after a delivered upload and a quarantined
// EICAR file, whoever edits the stopped gateway's SQLite database directly
// (a transfer row's values, a row's existence, or the audit chain's tail
// and head recomputed as the ledger would) is reported by `airlock audit
// verify` with exit 1, naming the row or the checkpoint; the untouched
// database verifies "intact".
func TestTamperedLedgerIsReported(t *testing.T) {
	t.Parallel()
	g, key := startAcme(t, gatewayOpts{}, supplierSpec{})
	dataFile, dataSHA := sourceFile(t, "data.csv", "id,value\n1,42\n")
	eicarFile, eicarSHA := sourceFile(t, "eicar.com", eicar)
	g.put(t, "acme", key, map[string]string{"data.csv": dataFile, "eicar.com": eicarFile})
	delivered := assertArrived(t, g, "acme", "/data.csv", dataSHA, int64(len("id,value\n1,42\n")))
	quarantined := assertQuarantined(t, g, "/eicar.com", eicarSHA)
	g.stop() // writes a last checkpoint, of the head

	forged := strings.Repeat("0", 64)
	tests := []struct {
		name   string
		tamper func(t *testing.T, db *sql.DB)
		want   []string // in the output, with exit 1; none: intact
		// passesUnanchored: without the checkpoints, which one who
		// rewrites the chain cannot sign, the chain verifies.
		passesUnanchored bool
	}{
		{"untouched", func(*testing.T, *sql.DB) {}, nil, true},
		{"sha256 and size of a delivered row", func(t *testing.T, db *sql.DB) {
			execSQL(t, db, `UPDATE transfers SET sha256 = ?, size = 1 WHERE id = ?`, forged, delivered.ID)
		}, []string{"TAMPERED: transfer " + delivered.ID + ": row edited:", `size is "1"`, `sha256 is "` + forged + `", the events say "` + dataSHA + `"`}, false},
		{"quarantined EICAR turned delivered and clean", func(t *testing.T, db *sql.DB) {
			execSQL(t, db, `UPDATE transfers SET state = 'delivered', scan_result = 'clean' WHERE id = ?`, quarantined.ID)
		}, []string{"TAMPERED: transfer " + quarantined.ID + ": row edited:", `state is "delivered", the events say "quarantined"`}, false},
		{"row deleted", func(t *testing.T, db *sql.DB) {
			execSQL(t, db, `DELETE FROM transfers WHERE id = ?`, delivered.ID)
		}, []string{"TAMPERED: transfer " + delivered.ID + ": no transfer row, but audit events up to seq"}, false},
		{"quarantine forged, the tail and head rewritten to match", func(t *testing.T, db *sql.DB) {
			forgeDelivery(t, db, quarantined.ID)
		}, []string{"TAMPERED: checkpoint ", "the chain was rewritten"}, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			cfg := copyGatewayTree(t, g)
			db, err := sql.Open("sqlite", filepath.Join(filepath.Dir(cfg), "state", "airlock.db"))
			if err != nil {
				t.Fatal(err)
			}
			tt.tamper(t, db)
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			out, err := airlockAt(cfg, nil, "audit", "verify")
			switch {
			case tt.want == nil:
				if err != nil || !strings.Contains(out, "audit chain intact") || strings.Contains(out, " 0 checkpoints") ||
					!strings.Contains(out, "checkpoints of key") {
					t.Errorf("audit verify: %v; want exit 0, intact, with checkpoints agreeing\n%s", err, out)
				}
			case !exitedWith(err, 1):
				t.Errorf("audit verify: %v, want exit status 1\n%s", err, out)
			case tt.passesUnanchored && strings.Contains(out, "TAMPERED: transfer"):
				t.Errorf("the rows tell of the forgery: the test forges badly\n%s", out)
			}
			for _, w := range tt.want {
				if !strings.Contains(out, w) {
					t.Errorf("audit verify output lacks %q:\n%s", w, out)
				}
			}

			// Without checkpoints only the rows can tell; an auditor who
			// names the key is told that its series is missing.
			if err := os.RemoveAll(filepath.Join(filepath.Dir(cfg), "state", "checkpoints")); err != nil {
				t.Fatal(err)
			}
			out, err = airlockAt(cfg, nil, "audit", "verify")
			if intact := err == nil && strings.Contains(out, "audit chain intact") && strings.Contains(out, "WARNING: checkpoint ") &&
				strings.Contains(out, "no checkpoints of this key"); intact != tt.passesUnanchored {
				t.Errorf("without checkpoints: audit verify: %v; want intact with a warning: %v\n%s", err, tt.passesUnanchored, out)
			}
			pub := filepath.Join(filepath.Dir(cfg), "state", "audit_ed25519.pub")
			out, err = airlockAt(cfg, nil, "audit", "verify", "--public-key", pub)
			if !exitedWith(err, 1) || !strings.Contains(out, "no checkpoints of this key") {
				t.Errorf("without checkpoints: audit verify --public-key: %v; want exit 1, the series reported missing\n%s", err, out)
			}
		})
	}
}

func exitedWith(err error, code int) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee) && ee.ExitCode() == code
}

func execSQL(t *testing.T, db *sql.DB, query string, args ...any) {
	t.Helper()
	if _, err := db.ExecContext(t.Context(), query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// copyGatewayTree copies the stopped gateway's configuration tree and
// state to a directory of its own, and returns its airlock.yaml.
func copyGatewayTree(t *testing.T, g *gateway) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "tree")
	if err := os.CopyFS(dir, os.DirFS(g.dir)); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dir, filepath.Base(g.cfg))
}

// airlockAt runs the airlock CLI against the configuration at cfg, with
// env added to the environment, and returns its stdout and stderr together.
func airlockAt(cfg string, env []string, args ...string) (string, error) {
	cmd := exec.Command(airlockBin, append(args, "--config", cfg)...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// forgeDelivery does what one with the database but not the checkpoint
// key would, to pass a quarantined transfer off as delivered: it edits the
// row, the digest in its latest event (computed as docs/security.md says),
// and every hash from that event to the chain head, head included.
func forgeDelivery(t *testing.T, db *sql.DB, id string) {
	t.Helper()
	execSQL(t, db, `UPDATE transfers SET state = 'delivered', scan_result = 'clean' WHERE id = ?`, id)
	var row []string
	cols := `id, direction, supplier, path, size, sha256, state, scan_result, destination, error, attempts, landing_key, node, remote_ip, created_at, updated_at`
	r := make([]any, 16)
	for i := range r {
		r[i] = new(string)
	}
	if err := db.QueryRowContext(t.Context(), `SELECT `+cols+` FROM transfers WHERE id = ?`, id).Scan(r...); err != nil {
		t.Fatal(err)
	}
	for _, v := range r {
		row = append(row, *v.(*string))
	}
	var from int64
	if err := db.QueryRowContext(t.Context(), `SELECT MAX(seq) FROM audit_events WHERE transfer_id = ? AND detail LIKE '%"row"%'`, id).Scan(&from); err != nil {
		t.Fatal(err)
	}
	var prev string
	if err := db.QueryRowContext(t.Context(), `SELECT hash FROM audit_events WHERE seq = ?`, from-1).Scan(&prev); err != nil {
		t.Fatal(err)
	}
	rows, err := db.QueryContext(t.Context(), `SELECT seq, at, kind, actor, remote_ip, conn_id, transfer_id, detail FROM audit_events WHERE seq >= ? ORDER BY seq`, from)
	if err != nil {
		t.Fatal(err)
	}
	type event struct {
		seq                                                   int64
		at, kind, actor, remoteIP, connID, transferID, detail string
	}
	var evs []event
	for rows.Next() {
		var e event
		if err := rows.Scan(&e.seq, &e.at, &e.kind, &e.actor, &e.remoteIP, &e.connID, &e.transferID, &e.detail); err != nil {
			t.Fatal(err)
		}
		evs = append(evs, e)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows.Close()
	for i, e := range evs {
		if i == 0 {
			var detail map[string]string
			if err := json.Unmarshal([]byte(e.detail), &detail); err != nil {
				t.Fatal(err)
			}
			detail["to"], detail[ledger.RowKey] = "delivered", rowDigest(row)
			b, _ := json.Marshal(detail)
			e.kind, e.detail = "transfer.delivered", string(b)
		}
		body, _ := json.Marshal([]any{e.seq, e.at, e.kind, e.actor, e.remoteIP, e.connID, e.transferID, e.detail})
		sum := sha256.Sum256([]byte(prev + "\n" + string(body)))
		hash := hex.EncodeToString(sum[:])
		execSQL(t, db, `UPDATE audit_events SET kind = ?, detail = ?, prev_hash = ?, hash = ? WHERE seq = ?`, e.kind, e.detail, prev, hash, e.seq)
		prev = hash
	}
	execSQL(t, db, `UPDATE audit_head SET hash = ? WHERE id = 1`, prev)
}

// rowDigest is a transfer row's digest as docs/security.md defines it.
func rowDigest(cols []string) string {
	b := []byte("airlock transfer row v1\n")
	for _, c := range cols {
		b = append(binary.AppendUvarint(b, uint64(len(c))), c...)
	}
	sum := sha256.Sum256(b)
	return "v1:" + hex.EncodeToString(sum[:])
}

// TestCheckpointsInS3: with the checkpoints in an S3 bucket and the key
// outside the state directory, the gateway writes a checkpoint every
// interval; an auditor with only the public half verifies the chain
// against them, and finds a chain cut short of the latest.
func TestCheckpointsInS3(t *testing.T) {
	t.Parallel()
	s3 := startVersity(t, "audit")
	keyFile := filepath.Join(t.TempDir(), "secrets", "audit_ed25519")
	g, key := startAcme(t, gatewayOpts{env: s3.Env(), extra: fmt.Sprintf(
		"audit:\n  checkpoints: %q\n  signing_key: %q\n  checkpoint_interval: 1s\n",
		testpeer.S3URL(s3.Addr, "audit", "airlock"), keyFile)}, supplierSpec{})
	dataFile, dataSHA := sourceFile(t, "data.csv", "id,value\n1,42\n")
	g.put(t, "acme", key, map[string]string{"data.csv": dataFile})
	assertArrived(t, g, "acme", "/data.csv", dataSHA, int64(len("id,value\n1,42\n")))
	bucket := filepath.Join(s3.Root, "audit", "airlock")
	eventually(t, 30*time.Second, "a checkpoint in the bucket", func() bool { return len(objects(t, bucket)) > 0 })
	g.stop()

	// The auditor has the public half and the gateway's configuration.
	pub := filepath.Join(t.TempDir(), "audit.pub")
	if err := os.Rename(keyFile+".pub", pub); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(keyFile); err != nil {
		t.Fatal(err)
	}
	out, err := airlockAt(g.cfg, s3.Env(), "audit", "verify", "--public-key", pub)
	if err != nil || !strings.Contains(out, "audit chain intact") || strings.Contains(out, " 0 checkpoints") {
		t.Fatalf("audit verify --public-key: %v; want intact, checkpoints agreeing\n%s", err, out)
	}

	// Cut the chain's last event, and the head back to the one before.
	db, err := sql.Open("sqlite", filepath.Join(g.dir, "state", "airlock.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var last int64
	var prev string
	if err := db.QueryRowContext(t.Context(), `SELECT seq, prev_hash FROM audit_events ORDER BY seq DESC LIMIT 1`).Scan(&last, &prev); err != nil {
		t.Fatal(err)
	}
	execSQL(t, db, `DELETE FROM audit_events WHERE seq = ?`, last)
	execSQL(t, db, `UPDATE audit_head SET seq = ?, hash = ? WHERE id = 1`, last-1, prev)
	out, err = airlockAt(g.cfg, s3.Env(), "audit", "verify", "--public-key", pub)
	if !exitedWith(err, 1) || !strings.Contains(out, fmt.Sprintf("the chain ends at seq %d", last-1)) {
		t.Errorf("audit verify of a chain cut short: %v; want exit 1, a checkpoint past its end\n%s", err, out)
	}
}
