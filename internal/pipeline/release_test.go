package pipeline

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/ledger/ledgertest"
)

// TestQuarantineReleaseNeedsApprovers: with ReleaseApprovals set, a
// release is a request the requester cannot approve; the approval that
// completes the count releases the file as the request said (here without
// a rescan), and a rejection drops a request.
func TestQuarantineReleaseNeedsApprovers(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		f := newFixture(t, dsn, fixtureOptions{})
		f.run()
		as := func(person string) *Operator {
			return &Operator{Ledger: f.ledger, Queue: f.queue, Landing: f.landing, Quarantine: f.quarantine,
				Actor: "operator:" + person, Person: person, ReleaseApprovals: 2}
		}
		a := f.land("/a.com", []byte(eicar))
		b := f.land("/b.com", []byte(eicar+"\n"))
		f.waitState(a.ID, ledger.Quarantined)
		f.waitState(b.ID, ledger.Quarantined)

		got, err := as("ann").Release(t.Context(), a.ID, "the data owner vouches for it", true)
		if err != nil || got.State != ledger.Quarantined {
			t.Fatalf("release request = %s, %v; want it to stay quarantined", got.State, err)
		}
		if _, _, err := as("ann").Approve(t.Context(), a.ID); !errors.Is(err, ledger.ErrOwnRequest) {
			t.Fatalf("the requester's approval = %v; want ErrOwnRequest", err)
		}
		if got, n, err := as("bob").Approve(t.Context(), a.ID); err != nil || n != 1 || got.State != ledger.Quarantined {
			t.Fatalf("bob's approval = %s, %d, %v; want quarantined, 1", got.State, n, err)
		}
		if got, n, err := as("cat").Approve(t.Context(), a.ID); err != nil || n != 2 || got.State != ledger.Received {
			t.Fatalf("cat's approval = %s, %d, %v; want received, 2", got.State, n, err)
		}
		if got := f.waitState(a.ID, ledger.Delivered); !strings.Contains(got.ScanResult, "released without a rescan") {
			t.Errorf("scan result %q", got.ScanResult)
		}
		if data, err := os.ReadFile(filepath.Join(f.destDir, supplier, "a.com")); err != nil || string(data) != eicar {
			t.Errorf("released bytes = %q, %v", data, err)
		}

		if _, err := as("ann").Release(t.Context(), b.ID, "please", false); err != nil {
			t.Fatal(err)
		}
		if got, err := as("bob").Reject(t.Context(), b.ID, "it is malware"); err != nil || got.State != ledger.Quarantined {
			t.Fatalf("reject = %s, %v; want quarantined", got.State, err)
		}
		if _, _, err := as("cat").Approve(t.Context(), b.ID); !errors.Is(err, ledger.ErrNoRelease) {
			t.Errorf("approval after the rejection = %v; want ErrNoRelease", err)
		}
		kinds := f.eventKinds(b.ID)
		if strings.Join(kinds[len(kinds)-2:], ",") != "quarantine.release_requested,quarantine.release_rejected" {
			t.Errorf("events of the rejected request: %v", kinds)
		}
	})
}
