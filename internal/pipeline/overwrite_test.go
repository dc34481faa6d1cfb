package pipeline

import (
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/ledger/ledgertest"
)

// TestSecondDeliveryOfAPath delivers two uploads of one path under each
// overwrite policy: one after the other, and together, as two sessions that
// both passed the check at open would (the race the delivery catches).
func TestSecondDeliveryOfAPath(t *testing.T) {
	t.Parallel()
	tests := []struct {
		policy   string
		together bool
		want     ledger.State
		wantKind string // the later transfer's overwrite event; "" none
	}{
		{config.OverwriteAllow, false, ledger.Delivered, "transfer.overwrite"},
		{config.OverwriteAllow, true, ledger.Delivered, "transfer.overwrite"},
		{config.OverwriteDeny, false, ledger.Failed, ""},
		{config.OverwriteDeny, true, ledger.Failed, ""},
		{config.OverwriteVersion, false, ledger.Delivered, "transfer.version"},
		{config.OverwriteVersion, true, ledger.Delivered, "transfer.version"},
	}
	for _, tt := range tests {
		name := tt.policy
		if tt.together {
			name += "/together"
		}
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
				f := newFixture(t, dsn, fixtureOptions{overwrite: tt.policy})
				f.run()
				earlier, later := []byte("first upload, 18 b"), []byte("")
				a := f.land("/report.csv", earlier)
				if !tt.together {
					f.waitState(a.ID, ledger.Delivered)
				}
				b := f.land("/report.csv", later)
				if b.ID < a.ID {
					// Landed within one millisecond: the ids, which order
					// the deliveries of a path, put b first.
					a, b, earlier, later = b, a, later, earlier
				}
				f.waitState(a.ID, ledger.Delivered)
				got := f.waitState(b.ID, tt.want)

				want := map[string][]byte{"report.csv": earlier}
				switch tt.policy {
				case config.OverwriteAllow:
					want["report.csv"] = later
				case config.OverwriteVersion:
					want["report."+b.ID+".csv"] = later
				}
				dest := filepath.Join(f.destDir, supplier)
				if names := f.files(dest); !slices.Equal(names, slices.Sorted(maps.Keys(want))) {
					t.Errorf("destination holds %v, want %v", names, slices.Sorted(maps.Keys(want)))
				}
				for name, data := range want {
					if got, err := os.ReadFile(filepath.Join(dest, name)); err != nil || string(got) != string(data) {
						t.Errorf("%s holds %q (%v), want %q", name, got, err, data)
					}
				}
				f.checkOverwriteRecord(tt.policy, a, got, tt.wantKind)
			})
		})
	}
}

// checkOverwriteRecord checks the ledger's account of b, the later upload
// of a's path: its state, destination, events, the metric and the chain.
func (f *fixture) checkOverwriteRecord(policy string, a, b ledger.Transfer, wantKind string) {
	t := f.t
	t.Helper()
	a = f.mustGet(a.ID)
	switch b.State {
	case ledger.Failed:
		if !strings.Contains(b.Error, "overwrite policy is deny") || !strings.Contains(b.Error, a.ID) || b.Destination != "" {
			t.Errorf("failed with error %q, destination %q", b.Error, b.Destination)
		}
		if _, err := os.Stat(f.landingFile(b)); err != nil {
			t.Errorf("the refused upload's landed bytes are gone: %v", err)
		}
		// a delivered, b failed: each to the supplier and the operators.
		failed := 0
		for _, m := range f.waitMails(4) {
			if strings.Contains(m.Subject, "failed") {
				failed++
			}
		}
		if failed != 2 {
			t.Errorf("%d emails tell of the failure, want 2 (supplier and operators)", failed)
		}
	case ledger.Delivered:
		if want := versionedKey(a.Destination, b.ID); policy == config.OverwriteVersion && b.Destination != want {
			t.Errorf("destination %q, want %q", b.Destination, want)
		} else if policy == config.OverwriteAllow && b.Destination != a.Destination {
			t.Errorf("destination %q, want %q", b.Destination, a.Destination)
		}
	}
	evs, err := f.ledger.Events(t.Context(), b.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(evs, func(ev ledger.Event) bool { return ev.Kind == wantKind })
	if wantKind == "" {
		if slices.ContainsFunc(evs, func(ev ledger.Event) bool { return ev.Kind == "transfer.overwrite" || ev.Kind == "transfer.version" }) {
			t.Errorf("events %v, want no overwrite", f.eventKinds(b.ID))
		}
	} else if i < 0 {
		t.Errorf("events %v, want %s", f.eventKinds(b.ID), wantKind)
	} else if d := evs[i].Detail; d["earlier_transfer_id"] != a.ID || d["earlier_sha256"] != a.SHA256 ||
		d["sha256"] != b.SHA256 || d["destination"] != b.Destination || d["policy"] != policy || a.SHA256 == b.SHA256 {
		t.Errorf("%s event detail %v; earlier %s (%s), this %s", wantKind, d, a.ID, a.SHA256, b.SHA256)
	}
	if n := testutil.ToFloat64(f.metrics.overwrites.WithLabelValues(policy)); n != 1 {
		t.Errorf("overwrites{policy=%s} = %v, want 1", policy, n)
	}
	if _, err := f.ledger.VerifyAudit(t.Context()); err != nil {
		t.Errorf("audit: %v", err)
	}
}

func TestVersionedKey(t *testing.T) {
	t.Parallel()
	for key, want := range map[string]string{
		"report.csv":            "report.ID.csv",
		"2026/01/report.csv":    "2026/01/report.ID.csv",
		"archive.tar.gz":        "archive.tar.ID.gz",
		"README":                "README.ID",
		"dir.d/README":          "dir.d/README.ID",
		"2026/.hidden":          "2026/.hidden.ID",
		"trailing.":             "trailing.ID.",
		"report.ID.csv":         "report.ID.ID.csv",
		"deep/er/x.y.z.parquet": "deep/er/x.y.z.ID.parquet",
	} {
		if got := versionedKey(key, "ID"); got != want {
			t.Errorf("versionedKey(%q) = %q, want %q", key, got, want)
		}
	}
}

// TestUploadNamedAsAVersion uploads a name that spells another transfer's
// versioned copy (report.<id>.csv): the copy is treated as delivered at that
// name, so the policy applies to it as to any delivered file.
func TestUploadNamedAsAVersion(t *testing.T) {
	t.Parallel()
	tests := []struct {
		policy string
		want   ledger.State
	}{
		{config.OverwriteAllow, ledger.Delivered},
		{config.OverwriteDeny, ledger.Failed},
		{config.OverwriteVersion, ledger.Delivered},
	}
	for _, tt := range tests {
		t.Run(tt.policy, func(t *testing.T) {
			t.Parallel()
			ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
				f := newFixture(t, dsn, fixtureOptions{overwrite: tt.policy})
				f.run()
				// A versioned copy, as a version policy in force earlier made it.
				a := f.waitState(f.land("/report.csv", []byte("a")).ID, ledger.Delivered)
				b := ledger.NewTransfer(ledger.Transfer{Supplier: supplier, Path: "/report.csv"})
				versioned := "report." + b.ID + ".csv"
				where, size, sum := versionedKey(a.Destination, b.ID), int64(1), hexSum([]byte("b"))
				writeFile(t, filepath.Join(f.destDir, supplier, versioned), []byte("b"))
				b, err := f.ledger.Record(t.Context(), b, ledger.Event{}, ledger.Delivered,
					ledger.Change{Destination: &where, Size: &size, SHA256: &sum}, ledger.Event{})
				if err != nil {
					t.Fatal(err)
				}

				c := f.waitState(f.land("/"+versioned, []byte("c")).ID, tt.want)
				kept := map[string]string{config.OverwriteAllow: "c", config.OverwriteDeny: "b", config.OverwriteVersion: "b"}[tt.policy]
				if got, err := os.ReadFile(filepath.Join(f.destDir, supplier, versioned)); err != nil || string(got) != kept {
					t.Errorf("%s holds %q (%v), want %q", versioned, got, err, kept)
				}
				wantKind := map[string]string{config.OverwriteAllow: "transfer.overwrite", config.OverwriteVersion: "transfer.version"}[tt.policy]
				f.checkOverwriteRecord(tt.policy, b, c, wantKind)
			})
		})
	}
}
