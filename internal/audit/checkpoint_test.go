package audit

import (
	"context"
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/ledger/ledgertest"
	"github.com/airlock-gw/airlock/internal/storage"
)

func TestSigningKey(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "state", "audit_ed25519")
	key, err := LoadSigningKey(p)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(p); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("key file: %v, %v; want mode 0600", fi, err)
	}
	again, err := LoadSigningKey(p)
	if err != nil || !again.Equal(key) {
		t.Errorf("second load = %v; want the same key", err)
	}
	want := key.Public().(ed25519.PublicKey)
	for _, from := range []string{p + ".pub", p} {
		if pub, err := LoadPublicKey(from); err != nil || !pub.Equal(want) {
			t.Errorf("LoadPublicKey(%s) = %v; want the key's public half", from, err)
		}
	}
	bad := filepath.Join(t.TempDir(), "bad")
	if err := os.WriteFile(bad, []byte("not a key\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadPublicKey(bad); err == nil {
		t.Error("LoadPublicKey of a file without a key succeeded")
	}
}

func newKey(t *testing.T) ed25519.PrivateKey {
	t.Helper()
	key, err := LoadSigningKey(filepath.Join(t.TempDir(), "audit_ed25519"))
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func openStore(t *testing.T) *storage.Store {
	t.Helper()
	st, err := storage.Open(t.Context(), filepath.Join(t.TempDir(), "checkpoints"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// putRaw stores body under name as an attacker with write access to the
// checkpoint store would.
func putRaw(t *testing.T, st *storage.Store, name string, body []byte) {
	t.Helper()
	w, err := st.Stage(t.Context(), name, int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
}

func TestLoadChecksEachCheckpoint(t *testing.T) {
	t.Parallel()
	key, other := newKey(t), newKey(t)
	pub := key.Public().(ed25519.PublicKey)
	at := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	good := Sign(key, "node-1", 7, strings.Repeat("a", 64), at)
	forged := good
	forged.Seq, forged.Hash = 9, strings.Repeat("b", 64) // the signature of another checkpoint
	foreign := Sign(other, "node-1", 8, strings.Repeat("c", 64), at)
	foreign.Key = good.Key // claims this series
	moved := Sign(key, "node-1", 5, strings.Repeat("d", 64), at)
	tests := []struct {
		name    string
		stored  func(st *storage.Store)
		want    []ledger.Anchor
		problem string // in the one problem expected, or ""
	}{
		{"empty series", func(*storage.Store) {}, nil, ""},
		{"good", func(st *storage.Store) {
			if wrote, err := Put(t.Context(), st, good); err != nil || !wrote {
				t.Fatalf("Put = %v, %v", wrote, err)
			}
			// Never overwritten, even by itself.
			if wrote, err := Put(t.Context(), st, good); err != nil || wrote {
				t.Fatalf("second Put = %v, %v; want false, nil", wrote, err)
			}
		}, []ledger.Anchor{{Seq: 7, Hash: good.Hash, Name: good.Name()}}, ""},
		{"forged signature", func(st *storage.Store) { putJSON(t, st, forged.Name(), forged) }, nil, "bad signature"},
		{"signed by another key", func(st *storage.Store) { putJSON(t, st, foreign.Name(), foreign) }, nil, "bad signature"},
		{"renamed", func(st *storage.Store) {
			putJSON(t, st, strings.Replace(moved.Name(), "05-", "11-", 1), moved)
		}, nil, "its contents name it"},
		{"not a checkpoint", func(st *storage.Store) {
			putRaw(t, st, good.Key+"/00000000000000000003-x.json", []byte("{}{"))
		}, nil, "version 0"},
		{"too large", func(st *storage.Store) {
			putRaw(t, st, good.Key+"/00000000000000000003-x.json", make([]byte, maxCheckpointSize+1))
		}, nil, "larger than a checkpoint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			st := openStore(t)
			tt.stored(st)
			// Another key's series beside it is not read at all.
			if _, err := Put(t.Context(), st, Sign(other, "node-1", 1, "x", at)); err != nil {
				t.Fatal(err)
			}
			anchors, problems, err := Load(t.Context(), st, pub)
			if err != nil {
				t.Fatal(err)
			}
			if len(anchors) != len(tt.want) || len(tt.want) > 0 && anchors[0] != tt.want[0] {
				t.Errorf("anchors = %+v, want %+v", anchors, tt.want)
			}
			if tt.problem == "" && len(problems) > 0 ||
				tt.problem != "" && (len(problems) != 1 || !strings.Contains(problems[0].Reason, tt.problem) || problems[0].Anchor == "") {
				t.Errorf("problems = %+v, want one saying %q", problems, tt.problem)
			}
		})
	}
}

func putJSON(t *testing.T, st *storage.Store, name string, c Checkpoint) {
	t.Helper()
	body, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	putRaw(t, st, name, body)
}

// record appends n events to l through the ledger, as a gateway would.
func record(t *testing.T, l *ledger.Ledger, n int, actor string) {
	t.Helper()
	for range n {
		if _, err := l.Append(t.Context(), ledger.Event{Kind: "connect", Actor: actor}); err != nil {
			t.Fatal(err)
		}
	}
}

func openLedger(t *testing.T, dsn string) *ledger.Ledger {
	t.Helper()
	l, err := ledger.Open(t.Context(), dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// The checkpoints of a chain catch another chain put in its place, as one
// with the database but not the key would write it: as long, or shorter.
func TestCheckpointsCatchARewrittenChain(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		key, st := newKey(t), openStore(t)
		l := openLedger(t, dsn)
		cp := &Checkpointer{Chain: l, Store: st, Key: key, Node: "node/1", Every: time.Hour,
			Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: NewMetrics(prometheus.NewRegistry())}
		if err := cp.Checkpoint(ctx); err != nil {
			t.Fatal(err)
		}
		record(t, l, 3, "acme")
		for range 2 { // the second finds the head unchanged
			if err := cp.Checkpoint(ctx); err != nil {
				t.Fatal(err)
			}
		}
		record(t, l, 2, "acme")
		// Run writes one at once.
		runCtx, stop := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- cp.Run(runCtx) }()
		var anchors []ledger.Anchor
		for deadline := time.Now().Add(time.Minute); len(anchors) < 2 && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
			var problems []ledger.Problem
			var err error
			if anchors, problems, err = Load(ctx, st, key.Public().(ed25519.PublicKey)); err != nil || len(problems) > 0 {
				t.Fatalf("Load = %v, %v", problems, err)
			}
		}
		stop()
		if err := <-done; err != nil {
			t.Fatalf("Run = %v", err)
		}
		if len(anchors) != 2 || anchors[0].Seq != 3 || anchors[1].Seq != 5 || !strings.HasSuffix(anchors[0].Name, "-node_1.json") {
			t.Fatalf("anchors = %+v; want checkpoints at seq 3 and 5", anchors)
		}
		if v, err := l.Verify(ctx, anchors); err != nil || !v.Intact() || v.Anchors != 2 {
			t.Errorf("the chain checkpointed: Verify = %+v, %v; want intact, 2 anchors", v, err)
		}
		for _, tt := range []struct {
			name   string
			events int
			want   string
		}{
			{"as long", 5, "rewritten"},
			{"shorter", 4, "the chain ends at seq 4"},
		} {
			// SQLite whatever the backend: only the chain it holds matters.
			forged := openLedger(t, "sqlite:"+filepath.Join(t.TempDir(), "forged.db"))
			record(t, forged, tt.events, "someone else")
			v, err := forged.Verify(ctx, anchors)
			if err != nil || v.Intact() || !strings.Contains(v.Problems[len(v.Problems)-1].Reason, tt.want) {
				t.Errorf("%s: Verify = %+v, %v; want a checkpoint reported: %q", tt.name, v, err, tt.want)
			}
		}
	})
}

// flakyChain fails its first fails reads of the head.
type flakyChain struct {
	mu    sync.Mutex
	fails int
}

func (c *flakyChain) Head(context.Context) (int64, string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fails > 0 {
		c.fails--
		return 0, "", errors.New("database unavailable")
	}
	return 7, strings.Repeat("a", 64), nil
}

// A checkpoint that cannot be written is counted and tried again at the
// next tick; Run goes on.
func TestCheckpointerRetries(t *testing.T) {
	t.Parallel()
	key, st := newKey(t), openStore(t)
	m := NewMetrics(prometheus.NewRegistry())
	cp := &Checkpointer{Chain: &flakyChain{fails: 2}, Store: st, Key: key, Node: "n1", Every: 10 * time.Millisecond,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil)), Metrics: m}
	ctx, stop := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- cp.Run(ctx) }()
	var anchors []ledger.Anchor
	for deadline := time.Now().Add(time.Minute); len(anchors) == 0 && time.Now().Before(deadline); {
		time.Sleep(10 * time.Millisecond)
		var err error
		if anchors, _, err = Load(t.Context(), st, key.Public().(ed25519.PublicKey)); err != nil {
			t.Fatal(err)
		}
	}
	stop()
	if err := <-done; err != nil {
		t.Fatalf("Run = %v", err)
	}
	if len(anchors) != 1 || anchors[0].Seq != 7 {
		t.Errorf("anchors = %+v; want the checkpoint at seq 7", anchors)
	}
	if got := testutil.ToFloat64(m.failures); got != 2 {
		t.Errorf("failures = %v, want 2", got)
	}
	if got := testutil.ToFloat64(m.seq); got != 7 {
		t.Errorf("checkpoint seq = %v, want 7", got)
	}
}
