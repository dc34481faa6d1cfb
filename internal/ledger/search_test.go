package ledger

import (
	"slices"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger/ledgertest"
)

func TestSearch(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		l := openLedger(t, dsn)
		ctx := t.Context()
		var ids []string // oldest first
		for i, p := range []string{"/a/Report.csv", "/b/report.csv", "/c/data_%_.csv", "/d/other.bin"} {
			tr, err := l.Record(ctx, NewTransfer(Transfer{Supplier: "acme", Path: p, Node: "n1"}), Event{}, Delivered,
				Change{Size: ptr(int64(10 * (i + 1))), SHA256: ptr(p[1:2] + "sum")}, Event{})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, tr.ID)
		}
		all, err := l.List(ctx, Filter{})
		if err != nil || len(all) != 4 {
			t.Fatalf("List: %d, %v", len(all), err)
		}
		tests := []struct {
			name string
			s    Search
			want []int // indexes into ids, newest first
		}{
			{"name, case as written", Search{NameContains: "report"}, []int{1}},
			{"name with wildcards taken literally", Search{NameContains: "%_"}, []int{2}},
			{"sha256", Search{SHA256: "dsum"}, []int{3}},
			{"created from", Search{CreatedFrom: all[1].CreatedAt}, []int{3, 2}},
			{"created before", Search{CreatedBefore: all[1].CreatedAt}, []int{1, 0}},
			{"a page after the second", Search{After: ptr(CursorOf(all[1]))}, []int{1, 0}},
			{"nothing before the epoch", Search{CreatedBefore: time.Unix(0, 0)}, nil},
		}
		for _, tt := range tests {
			got, err := l.List(ctx, Filter{Search: tt.s})
			if err != nil {
				t.Fatal(err)
			}
			var gotIDs, want []string
			for _, tr := range got {
				gotIDs = append(gotIDs, tr.ID)
			}
			for _, i := range tt.want {
				want = append(want, ids[i])
			}
			if !slices.Equal(gotIDs, want) {
				t.Errorf("%s: got %v, want %v", tt.name, gotIDs, want)
			}
		}
		counts, err := l.Counts(ctx, all[3].CreatedAt)
		if err != nil {
			t.Fatal(err)
		}
		if want := []Count{{Direction: Ingress, State: Delivered, Transfers: 4, Bytes: 100}}; !slices.Equal(counts, want) {
			t.Errorf("Counts = %+v, want %+v", counts, want)
		}
	})
}

func TestSearchEvents(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		l := openLedger(t, dsn)
		ctx := t.Context()
		for _, ev := range []Event{
			{Kind: "approval.granted", Actor: "ann", TransferID: "t1"}, {Kind: "approval.refused", Actor: "walt", TransferID: "t1"},
			{Kind: "approvals", Actor: "ann"}, {Kind: "auth.ok", Actor: "acme"}, {Kind: "approval.granted", Actor: "bob", TransferID: "t2"},
		} {
			if _, err := l.Append(ctx, ev); err != nil {
				t.Fatal(err)
			}
		}
		tests := []struct {
			name string
			f    EventFilter
			want []int64 // seqs, newest first
		}{
			{"all", EventFilter{}, []int64{5, 4, 3, 2, 1}},
			{"a kind's prefix", EventFilter{Kind: "approval."}, []int64{5, 2, 1}},
			{"an actor", EventFilter{Actor: "ann"}, []int64{3, 1}},
			{"a transfer", EventFilter{TransferID: "t1"}, []int64{2, 1}},
			{"a page", EventFilter{Before: 4, Limit: 2}, []int64{3, 2}},
		}
		for _, tt := range tests {
			evs, err := l.SearchEvents(ctx, tt.f)
			if err != nil {
				t.Fatal(err)
			}
			var got []int64
			for _, ev := range evs {
				got = append(got, ev.Seq)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
			}
		}
	})
}

func TestApproversOf(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		l := openLedger(t, dsn)
		ctx := t.Context()
		var ids []string
		for _, p := range []string{"/a", "/b", "/c"} {
			mtime := time.Now()
			tr, err := l.Admit(ctx, NewTransfer(Transfer{Supplier: "walt", Route: "proj", Path: p, State: Queued, LandingKey: "proj" + p, MTime: &mtime}), Event{}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := l.Advance(ctx, tr.ID, []State{Queued}, AwaitingApproval, Change{}, Event{}); err != nil {
				t.Fatal(err)
			}
			ids = append(ids, tr.ID)
		}
		for _, a := range []struct{ id, who string }{{ids[0], "ann"}, {ids[0], "bob"}, {ids[2], "bob"}} {
			if _, _, err := l.Approve(ctx, a.id, a.who, 3, Change{}, Event{}); err != nil {
				t.Fatal(err)
			}
		}
		who, err := l.ApproversOf(ctx, ids)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(who[ids[0]], []string{"ann", "bob"}) || len(who[ids[1]]) != 0 || !slices.Equal(who[ids[2]], []string{"bob"}) {
			t.Errorf("ApproversOf = %v", who)
		}
	})
}
