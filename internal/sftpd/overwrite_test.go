package sftpd

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/sftptest"
)

// openFlags are the ways a client opens a file for writing.
var openFlags = []struct {
	name  string
	flags uint32
}{
	{"trunc", sftptest.FXFWrite | sftptest.FXFCreat | sftptest.FXFTrunc},
	{"creat", sftptest.FXFWrite | sftptest.FXFCreat},
	{"excl", sftptest.FXFWrite | sftptest.FXFCreat | sftptest.FXFExcl},
	{"append", sftptest.FXFWrite | sftptest.FXFCreat | sftptest.FXFAppend},
}

// TestOpenOfATakenName opens for writing, with each set of flags and under
// each overwrite policy, names whose latest upload is in each state.
// CREAT|EXCL fails on a name pending or delivered under every policy, as
// O_EXCL would; APPEND on a listed upload, unless interrupted; deny refuses any write to a name received or delivered;
// allow and version let the open through, for delivery to decide.
func TestOpenOfATakenName(t *testing.T) {
	t.Parallel()
	states := []ledger.State{"", ledger.Receiving, ledger.Received, ledger.Delivered, ledger.Failed, ledger.Quarantined}
	for _, policy := range []string{config.OverwriteAllow, config.OverwriteDeny, config.OverwriteVersion} {
		t.Run(policy, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t, serverOptions{overwrite: policy})
			c := ts.rawClient(t, uploader)
			denied := 0
			for _, st := range states {
				for _, of := range openFlags {
					p := fmt.Sprintf("/%s-%s.csv", of.name, cmpState(st))
					ts.seed(t, uploader, p, st)
					wantCode, wantMsg := uint32(sftptest.FXOK), ""
					switch {
					case of.name == "append" && (st == ledger.Receiving || st == ledger.Received): // listed; settled ones are not without receipts
						wantCode, wantMsg = sftptest.FXOpUnsupported, "appending"
					case of.name == "excl" && st == ledger.Delivered:
						wantCode, wantMsg = sftptest.FXFailure, "delivered already: already exists"
					case of.name == "excl" && st != "" && st != ledger.Failed && st != ledger.Quarantined:
						wantCode, wantMsg = sftptest.FXFailure, "already exists"
					case policy == config.OverwriteDeny && (st == ledger.Received || st == ledger.Delivered):
						wantCode, wantMsg = sftptest.FXPermissionDenied, "overwrite policy is deny"
						denied++
					}
					code, msg := c.Status(sftptest.FXPOpen, p, of.flags, uint32(0))
					if code != wantCode || !strings.Contains(msg, wantMsg) {
						t.Errorf("open %s (%s) after an upload %s: status %d %q, want %d %q", p, of.name, cmpState(st), code, msg, wantCode, wantMsg)
					}
				}
			}
			if got := ts.refusals(t, "overwrite-denied"); got != denied {
				t.Errorf("%d refusals audited as overwrite-denied, want %d", got, denied)
			}
		})
	}
}

// TestRenameOntoADeliveredName: under deny, an upload under a temporary
// name cannot be renamed onto a delivered name either.
func TestRenameOntoADeliveredName(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		policy string
		want   uint32
	}{
		{config.OverwriteAllow, sftptest.FXOK},
		{config.OverwriteDeny, sftptest.FXPermissionDenied},
		{config.OverwriteVersion, sftptest.FXOK},
	} {
		t.Run(tt.policy, func(t *testing.T) {
			t.Parallel()
			ts := newTestServer(t, serverOptions{overwrite: tt.policy})
			ts.seed(t, uploader, "/report.csv", ledger.Delivered)
			c := ts.sftpClient(t, uploader)
			if err := putFile(c, "/report.csv.filepart", []byte("second")); err != nil {
				t.Fatal(err)
			}
			err := c.PosixRename("/report.csv.filepart", "/report.csv")
			if (err == nil) != (tt.want == sftptest.FXOK) {
				t.Fatalf("rename onto a delivered name: %v", err)
			}
			if tt.want != sftptest.FXOK && ts.refusals(t, "overwrite-denied") != 1 {
				t.Errorf("the refused rename was not audited")
			}
		})
	}
}

// seed records an upload of p by supplier in state st ("": none).
func (ts *testServer) seed(t *testing.T, supplier, p string, st ledger.State) {
	t.Helper()
	if st == "" {
		return
	}
	ctx := context.Background()
	tr, err := ts.ledger.Begin(ctx, ledger.NewTransfer(ledger.Transfer{Supplier: supplier, Path: p}), ledger.Event{})
	if err == nil && st != ledger.Receiving {
		_, err = ts.ledger.Advance(ctx, tr.ID, []ledger.State{ledger.Receiving}, st, ledger.Change{}, ledger.Event{})
	}
	if err != nil {
		t.Fatal(err)
	}
}

func cmpState(st ledger.State) string {
	if st == "" {
		return "none"
	}
	return string(st)
}
