package sftpd

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger"
)

// TestRecoverSilentNodes: the uploads of a node silent for rescue_after are
// recovered by another node as its own restart would: failed, with what
// its sessions left in landing removed. A node's own uploads, and those of
// a node heard from lately, are left alone.
func TestRecoverSilentNodes(t *testing.T) {
	t.Parallel()
	ts := newTestServer(t, serverOptions{})
	ts.srv.rescueAfter = time.Hour
	ctx := context.Background()
	receiving := map[string]ledger.Transfer{}
	for _, node := range []string{"dead", ts.srv.node} {
		if err := ts.ledger.Heartbeat(ctx, node); err != nil {
			t.Fatal(err)
		}
		tr, err := ts.ledger.Begin(ctx, ledger.NewTransfer(ledger.Transfer{Supplier: uploader, Path: "/" + node + ".csv", Node: node}), ledger.Event{})
		if err != nil {
			t.Fatal(err)
		}
		receiving[node] = tr
	}
	us, err := ts.ledger.StartUploads(ctx, "dead", uploader)
	if err != nil {
		t.Fatal(err)
	}
	stray := filepath.Join(ts.landingDir, filepath.FromSlash(us.LandingPrefix()+"unrecorded"))
	writeFile(t, stray, "landed, never recorded")

	state := func(node string) ledger.State {
		t.Helper()
		tr, err := ts.ledger.Get(ctx, receiving[node].ID)
		if err != nil {
			t.Fatal(err)
		}
		return tr.State
	}
	ts.srv.recoverSilentNodes(ctx, time.Now().Add(30*time.Minute))
	if state("dead") != ledger.Receiving {
		t.Fatalf("recovered a node silent for less than rescue_after")
	}
	ts.srv.recoverSilentNodes(ctx, time.Now().Add(2*time.Hour))
	if got := state("dead"); got != ledger.Failed {
		t.Errorf("the silent node's upload is %s, want failed", got)
	}
	if got := state(ts.srv.node); got != ledger.Receiving {
		t.Errorf("this node's own upload is %s; its own restart recovers it, not a sweep", got)
	}
	if _, err := os.Stat(stray); !os.IsNotExist(err) {
		t.Errorf("what the silent node's session left unrecorded is still in landing: %v", err)
	}
	if sessions, err := ts.ledger.UploadSessions(ctx, "dead"); err != nil || len(sessions) != 0 {
		t.Errorf("the silent node's upload sessions = %v, %v; want ended", sessions, err)
	}
}
