package ledger

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger/ledgertest"
)

func ptr[T any](v T) *T { return &v }

func TestTransferLifecycle(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		l := openLedger(t, dsn)
		begun, err := l.Begin(ctx, NewTransfer(Transfer{
			Supplier: "acme", Path: "/2026/data.tmp", Node: "node-a", RemoteIP: "203.0.113.7", LandingKey: "landing/x",
		}), Event{ConnID: "c1"})
		if err != nil {
			t.Fatal(err)
		}
		if len(begun.ID) != 26 || begun.State != Receiving || begun.Direction != Ingress || begun.CreatedAt.IsZero() {
			t.Fatalf("Begin returned %+v", begun)
		}
		if got, err := l.Get(ctx, begun.ID); err != nil || got != begun {
			t.Fatalf("Get = %+v, %v; want %+v", got, err, begun)
		}

		steps := []struct {
			from   []State
			to     State
			ch     Change
			ev     Event
			verify func(t *testing.T, tr Transfer)
		}{
			{[]State{Receiving}, Receiving, Change{Path: ptr("/2026/data.csv")}, Event{Kind: "upload.rename", Actor: "acme"},
				func(t *testing.T, tr Transfer) {
					if tr.Path != "/2026/data.csv" {
						t.Errorf("path = %q", tr.Path)
					}
				}},
			{[]State{Receiving}, Received, Change{Size: ptr(int64(5_000_000_000)), SHA256: ptr(strings.Repeat("ab", 32))}, Event{Kind: "upload.finish"},
				func(t *testing.T, tr Transfer) {
					if tr.Size != 5_000_000_000 || tr.SHA256 != strings.Repeat("ab", 32) {
						t.Errorf("size, sha256 = %d, %q", tr.Size, tr.SHA256)
					}
				}},
			{[]State{Received, Scanning}, Scanning, Change{}, Event{Kind: "scan.start"}, nil},
			{[]State{Scanning}, Delivering, Change{ScanResult: ptr("clean"), Destination: ptr("s3://land/acme/data.csv")}, Event{Kind: "scan.clean"}, nil},
			{[]State{Delivering}, Delivering, Change{IncAttempts: true, Error: ptr("destination unavailable")}, Event{}, nil},
			{[]State{Delivering}, Delivered, Change{IncAttempts: true, Error: ptr("")}, Event{Kind: "deliver.ok"},
				func(t *testing.T, tr Transfer) {
					if tr.Attempts != 2 || tr.Error != "" || tr.ScanResult != "clean" || tr.Destination != "s3://land/acme/data.csv" {
						t.Errorf("after delivery: %+v", tr)
					}
				}},
		}
		prev := begun
		for i, s := range steps {
			tr, err := l.Advance(ctx, begun.ID, s.from, s.to, s.ch, s.ev)
			if err != nil {
				t.Fatalf("step %d: %v", i, err)
			}
			if tr.State != s.to || tr.UpdatedAt.Before(prev.UpdatedAt) || tr.CreatedAt != begun.CreatedAt {
				t.Errorf("step %d: state %s, updated %v (before %v)", i, tr.State, tr.UpdatedAt, prev.UpdatedAt)
			}
			if got, err := l.Get(ctx, begun.ID); err != nil || got != tr {
				t.Errorf("step %d: Get = %+v, %v; want %+v", i, got, err, tr)
			}
			if s.verify != nil {
				s.verify(t, tr)
			}
			prev = tr
		}

		evs, err := l.Events(ctx, begun.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		var kinds []string
		for _, ev := range evs {
			kinds = append(kinds, ev.Kind)
			if ev.TransferID != begun.ID {
				t.Errorf("event %d has transfer %q", ev.Seq, ev.TransferID)
			}
		}
		wantKinds := []string{"upload.start", "upload.rename", "upload.finish", "scan.start", "scan.clean", "transfer.delivering", "deliver.ok"}
		if !slices.Equal(kinds, wantKinds) {
			t.Errorf("event kinds = %v, want %v", kinds, wantKinds)
		}
		start := evs[0]
		if start.Actor != "acme" || start.RemoteIP != "203.0.113.7" || start.ConnID != "c1" || !maps.Equal(start.Detail, map[string]string{RowKey: digestOf(begun)}) || !start.At.Equal(begun.CreatedAt) {
			t.Errorf("start event = %+v", start)
		}
		if d := withoutRow(evs[2].Detail); !maps.Equal(d, map[string]string{"from": "receiving", "to": "received"}) {
			t.Errorf("upload.finish detail = %v", d)
		}
		if evs[2].Actor != "system" {
			t.Errorf("default actor = %q, want system", evs[2].Actor)
		}
	})
}

func TestAdvanceFailureChangesNothing(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		l := openLedger(t, dsn)
		tr, err := l.Begin(ctx, NewTransfer(Transfer{Supplier: "acme", Path: "/a.csv"}), Event{})
		if err != nil {
			t.Fatal(err)
		}
		detail := map[string]string{"reason": "x"}
		tests := []struct {
			name    string
			id      string
			from    []State
			to      State
			wantErr error
			wantMsg string
		}{
			{"wrong state", tr.ID, []State{Scanning, Delivering}, Delivered, ErrStateConflict, "state is receiving"},
			{"no from states", tr.ID, nil, Received, ErrStateConflict, "state is receiving"},
			{"unknown id", "nope", []State{Receiving}, Received, ErrNotFound, "advance transfer nope"},
			{"unknown target state", tr.ID, []State{Receiving}, "lost", nil, `unknown state "lost"`},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				_, err := l.Advance(ctx, tt.id, tt.from, tt.to, Change{Path: ptr("/b.csv"), IncAttempts: true},
					Event{Kind: "x", Detail: detail})
				if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) || !strings.Contains(err.Error(), tt.wantMsg) {
					t.Fatalf("Advance error = %v, want %v containing %q", err, tt.wantErr, tt.wantMsg)
				}
				if got, err := l.Get(ctx, tr.ID); err != nil || got != tr {
					t.Errorf("transfer changed: %+v, %v; want %+v", got, err, tr)
				}
				if evs, err := l.Events(ctx, "", 0); err != nil || len(evs) != 1 {
					t.Errorf("events = %d, %v; want only the upload.start", len(evs), err)
				}
				if len(detail) != 1 {
					t.Errorf("caller's detail map modified: %v", detail)
				}
			})
		}
		if _, err := l.Get(ctx, "nope"); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(unknown) = %v, want ErrNotFound", err)
		}
		if n, err := l.VerifyAudit(ctx); err != nil || n != 1 {
			t.Errorf("VerifyAudit = %d, %v; want 1, nil", n, err)
		}
	})
}

// TestRecord: a transfer recorded with its outcome reads back as Begin and
// Advance would have left it, its two events chained in order, and a
// failing hook leaves nothing behind.
func TestRecord(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		l := openLedger(t, dsn)
		if _, err := l.Append(ctx, Event{Kind: "connect"}); err != nil {
			t.Fatal(err)
		}
		fresh := NewTransfer(Transfer{Supplier: "acme", Path: "/a.csv", RemoteIP: "203.0.113.7", LandingKey: "acme/K"})
		finish := Event{Kind: "upload.finish", Detail: map[string]string{"size": "3"}}

		boom := errors.New("queue full")
		_, err := l.Record(ctx, fresh, Event{ConnID: "c1"}, Received, Change{Size: ptr(int64(3)),
			InTx: func(context.Context, *sql.Tx, Transfer) error { return boom }}, finish)
		if !errors.Is(err, boom) {
			t.Fatalf("Record with a failing hook = %v, want %v", err, boom)
		}
		if _, err := l.Get(ctx, fresh.ID); !errors.Is(err, ErrNotFound) {
			t.Fatalf("after a failed Record, Get = %v; want ErrNotFound", err)
		}

		var hooked Transfer
		tr, err := l.Record(ctx, fresh, Event{ConnID: "c1"}, Received, Change{Size: ptr(int64(3)), SHA256: ptr("ab"),
			InTx: func(_ context.Context, _ *sql.Tx, got Transfer) error { hooked = got; return nil }}, finish)
		if err != nil {
			t.Fatal(err)
		}
		if tr.ID != fresh.ID || tr.State != Received || tr.Size != 3 || tr.SHA256 != "ab" || !tr.CreatedAt.Equal(fresh.CreatedAt) || tr.UpdatedAt.Before(tr.CreatedAt) {
			t.Errorf("Record returned %+v", tr)
		}
		if hooked != tr {
			t.Errorf("hook saw %+v, want %+v", hooked, tr)
		}
		if got, err := l.Get(ctx, fresh.ID); err != nil || got != tr {
			t.Errorf("Get = %+v, %v; want %+v", got, err, tr)
		}
		evs, err := l.Events(ctx, fresh.ID, 0)
		if err != nil || len(evs) != 2 {
			t.Fatalf("events = %+v, %v; want two", evs, err)
		}
		start, end := evs[0], evs[1]
		if start.Kind != "upload.start" || start.Actor != "acme" || start.RemoteIP != "203.0.113.7" || start.ConnID != "c1" || !start.At.Equal(fresh.CreatedAt) {
			t.Errorf("start event = %+v", start)
		}
		if end.Kind != "upload.finish" || !end.At.Equal(tr.UpdatedAt) ||
			!maps.Equal(end.Detail, map[string]string{"size": "3", "from": "receiving", "to": "received", RowKey: digestOf(tr)}) {
			t.Errorf("finish event = %+v", end)
		}
		if start.Seq != 2 || end.Seq != 3 || end.PrevHash != start.Hash {
			t.Errorf("events at seq %d and %d, linked %v; want 2 and 3, linked", start.Seq, end.Seq, end.PrevHash == start.Hash)
		}
		checkChain(t, l, 3, 0)

		if _, err := l.Record(ctx, fresh, Event{}, Received, Change{}, Event{}); err == nil {
			t.Error("a second Record of the same transfer succeeded")
		}
		if _, err := l.Record(ctx, tr, Event{}, Failed, Change{}, Event{}); err == nil || !strings.Contains(err.Error(), "NewTransfer") {
			t.Errorf("Record of a transfer not new = %v; want an error naming NewTransfer", err)
		}
	})
}

func TestAdvanceInTx(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		l := openLedger(t, dsn)
		tr, err := l.Begin(ctx, NewTransfer(Transfer{Supplier: "acme", Path: "/a.csv"}), Event{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.DB().ExecContext(ctx, `CREATE TABLE jobs (transfer_id TEXT NOT NULL)`); err != nil {
			t.Fatal(err)
		}
		insertJob := func(ctx context.Context, tx *sql.Tx, got Transfer) error {
			if got.State != Received || got.ID != tr.ID {
				return fmt.Errorf("hook saw %s in state %s", got.ID, got.State)
			}
			_, err := tx.ExecContext(ctx, `INSERT INTO jobs (transfer_id) VALUES ($1)`, got.ID)
			return err
		}
		jobs := func() int {
			var n int
			if err := l.DB().QueryRowContext(ctx, `SELECT COUNT(*) FROM jobs`).Scan(&n); err != nil {
				t.Fatal(err)
			}
			return n
		}

		// A failing hook undoes the state change, the event and its own writes.
		boom := errors.New("queue full")
		_, err = l.Advance(ctx, tr.ID, []State{Receiving}, Received, Change{InTx: func(ctx context.Context, tx *sql.Tx, got Transfer) error {
			if err := insertJob(ctx, tx, got); err != nil {
				return err
			}
			return boom
		}}, Event{})
		if !errors.Is(err, boom) {
			t.Fatalf("Advance with failing hook = %v, want %v", err, boom)
		}
		if got, _ := l.Get(ctx, tr.ID); got.State != Receiving || jobs() != 0 {
			t.Fatalf("after failed hook: state %s, %d jobs; want receiving, 0", got.State, jobs())
		}

		if _, err := l.Advance(ctx, tr.ID, []State{Receiving}, Received, Change{InTx: insertJob}, Event{}); err != nil {
			t.Fatal(err)
		}
		if got, _ := l.Get(ctx, tr.ID); got.State != Received || jobs() != 1 {
			t.Errorf("after hook: state %s, %d jobs; want received, 1", got.State, jobs())
		}
		if n, err := l.VerifyAudit(ctx); err != nil || n != 2 {
			t.Errorf("VerifyAudit = %d, %v; want 2, nil", n, err)
		}
	})
}

// TestAdvanceAlso checks that the events a change brings along are the
// transfer's, follow the move's own, and are undone with it.
func TestAdvanceAlso(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		l := openLedger(t, dsn)
		tr, err := l.Begin(ctx, NewTransfer(Transfer{Supplier: "acme", Path: "/a.csv"}), Event{})
		if err != nil {
			t.Fatal(err)
		}
		also := []Event{{Kind: "transfer.overwrite", Detail: map[string]string{"replaced_sha256": "ab"}}}
		if _, err := l.Advance(ctx, tr.ID, []State{Delivering}, Delivered, Change{Also: also}, Event{}); !errors.Is(err, ErrStateConflict) {
			t.Fatalf("Advance from the wrong state = %v, want %v", err, ErrStateConflict)
		}
		if _, err := l.Advance(ctx, tr.ID, []State{Receiving}, Delivered, Change{Also: also}, Event{}); err != nil {
			t.Fatal(err)
		}
		evs, err := l.Events(ctx, tr.ID, 0)
		if err != nil {
			t.Fatal(err)
		}
		var kinds []string
		for _, ev := range evs {
			kinds = append(kinds, ev.Kind)
		}
		if want := []string{"upload.start", "transfer.delivered", "transfer.overwrite"}; !slices.Equal(kinds, want) {
			t.Fatalf("events %v, want %v", kinds, want)
		}
		if last := evs[2]; last.At != evs[1].At || last.Detail["replaced_sha256"] != "ab" || last.Actor != "system" {
			t.Errorf("overwrite event %+v", last)
		}
		if n, err := l.VerifyAudit(ctx); err != nil || n != 3 {
			t.Errorf("VerifyAudit = %d, %v; want 3, nil", n, err)
		}
	})
}

func TestList(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		ctx := t.Context()
		l := openLedger(t, dsn)
		// Created in this order, so List returns them reversed.
		seed := []struct {
			supplier, path, node string
			state                State
			direction            Direction
		}{
			{"acme", "/a.csv", "n1", Receiving, Ingress},
			{"acme", "/b.csv", "n1", Delivered, Egress},
			{"beta", "/a.csv", "n2", Quarantined, Ingress},
			{"acme", "/c.csv", "n2", Received, Ingress},
			{"beta", "/d.csv", "n1", Receiving, Ingress},
		}
		ids := make([]string, len(seed))
		for i, s := range seed {
			tr, err := l.Begin(ctx, NewTransfer(Transfer{Direction: s.direction, Supplier: s.supplier, Path: s.path, Node: s.node}), Event{})
			if err != nil {
				t.Fatal(err)
			}
			if s.state != Receiving {
				if _, err := l.Advance(ctx, tr.ID, []State{Receiving}, s.state, Change{Destination: ptr("dest" + s.path)}, Event{}); err != nil {
					t.Fatal(err)
				}
			}
			ids[i] = tr.ID
			time.Sleep(time.Millisecond) // distinct created_at, so the order is known
		}
		updatedAt := func(i int) time.Time {
			tr, err := l.Get(ctx, ids[i])
			if err != nil {
				t.Fatal(err)
			}
			return tr.UpdatedAt
		}

		tests := []struct {
			name string
			f    Filter
			want []int // indexes into seed, in the expected order
		}{
			{"all, newest first", Filter{}, []int{4, 3, 2, 1, 0}},
			{"supplier", Filter{Supplier: "acme"}, []int{3, 1, 0}},
			{"egress", Filter{Direction: Egress}, []int{1}},
			{"ingress of a supplier", Filter{Direction: Ingress, Supplier: "acme"}, []int{3, 0}},
			{"path", Filter{Path: "/a.csv"}, []int{2, 0}},
			{"destination", Filter{Path: "/a.csv", Destination: "dest/a.csv"}, []int{2}},
			{"one state", Filter{States: []State{Receiving}}, []int{4, 0}},
			{"several states", Filter{States: []State{Delivered, Quarantined, Received}}, []int{3, 2, 1}},
			{"node and state (crash recovery)", Filter{Node: "n1", States: []State{Receiving}}, []int{4, 0}},
			{"everything", Filter{Supplier: "beta", Path: "/d.csv", Node: "n1", States: []State{Receiving, Received}}, []int{4}},
			{"limit", Filter{Limit: 2}, []int{4, 3}},
			{"updated since", Filter{UpdatedSince: updatedAt(3)}, []int{4, 3}},
			{"states or recently settled", Filter{Supplier: "acme", States: []State{Received},
				Recent: RecentStates{States: []State{Delivered}, Since: updatedAt(1)}}, []int{3, 1}},
			{"states or settled since later", Filter{Supplier: "acme", States: []State{Received},
				Recent: RecentStates{States: []State{Delivered}, Since: updatedAt(3)}}, []int{3}},
			{"limit with filter", Filter{Supplier: "acme", Limit: 1}, []int{3}},
			{"no match", Filter{Supplier: "gamma"}, nil},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				got, err := l.List(ctx, tt.f)
				if err != nil {
					t.Fatal(err)
				}
				var gotIDs, wantIDs []string
				for _, tr := range got {
					gotIDs = append(gotIDs, tr.ID)
				}
				for _, i := range tt.want {
					wantIDs = append(wantIDs, ids[i])
				}
				if !slices.Equal(gotIDs, wantIDs) {
					t.Errorf("List(%+v) = %v, want %v", tt.f, gotIDs, wantIDs)
				}
			})
		}
	})
}

func TestTransferJSON(t *testing.T) {
	t.Parallel()
	b, err := json.Marshal(Transfer{MTime: ptr(time.Unix(0, 0)), HiddenAt: ptr(time.Unix(0, 0))}) // omitted when unset
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	// The public contract (DESIGN.md), then the extra row fields.
	want := []string{"id", "direction", "supplier", "path", "size", "sha256", "state", "scan_result",
		"destination", "error", "created_at", "updated_at", "mtime", "hidden_at",
		"attempts", "landing_key", "node", "remote_ip"}
	got := slices.Sorted(maps.Keys(m))
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("JSON fields = %v, want %v", got, want)
	}
}

func TestParseState(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    State
		wantErr bool
	}{
		{"receiving", Receiving, false},
		{"delivered", Delivered, false},
		{"Quarantined", Quarantined, false},
		{"failed", Failed, false},
		{"", "", true},
		{"done", "", true},
	}
	for _, tt := range tests {
		got, err := ParseState(tt.in)
		if got != tt.want || (err != nil) != tt.wantErr {
			t.Errorf("ParseState(%q) = %q, %v", tt.in, got, err)
		}
	}
}

func TestParseDirection(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]Direction{"ingress": Ingress, "EGRESS": Egress, "out": "", "": ""} {
		got, err := ParseDirection(in)
		if got != want || (err == nil) != (want != "") {
			t.Errorf("ParseDirection(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func TestNewID(t *testing.T) {
	t.Parallel()
	base := time.Now()
	prev := ""
	seen := map[string]bool{}
	for i := range 1000 {
		id := newID(base.Add(time.Duration(i) * time.Millisecond))
		if len(id) != 26 || strings.ToLower(id) != id || !IsID(id) {
			t.Fatalf("id %q: want 26 lowercase characters", id)
		}
		if id <= prev || seen[id] {
			t.Fatalf("id %q does not sort after %q", id, prev)
		}
		prev, seen[id] = id, true
	}
}

func TestIsID(t *testing.T) {
	t.Parallel()
	for s, want := range map[string]bool{
		"06h52sm7r3kgn5tghjrt71on5c":  true,
		"06H52SM7R3KGN5TGHJRT71ON5C":  false, // ids are lower case
		"06h52sm7r3kgn5tghjrt71on5w":  false, // w is not in the alphabet
		"06h52sm7r3kgn5tghjrt71on5":   false,
		"06h52sm7r3kgn5tghjrt71on5cc": false,
		"csv":                         false,
		"":                            false,
	} {
		if got := IsID(s); got != want {
			t.Errorf("IsID(%q) = %v, want %v", s, got, want)
		}
	}
}

// TestListPathPrefix: the prefix matches bytes exactly: no case folding and
// no wildcards, on every backend.
func TestListPathPrefix(t *testing.T) {
	t.Parallel()
	ledgertest.ForEachBackend(t, func(t *testing.T, dsn string) {
		ctx := context.Background()
		l, err := Open(ctx, dsn)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		for _, p := range []string{"/dir/a.csv", "/dir/sub/b.csv", "/DIR/c.csv", "/dirx/d.csv", "/d_r/e.csv", "/dir", "/dir0", "/dir.csv"} {
			if _, err := l.Begin(ctx, NewTransfer(Transfer{Supplier: "acme", Path: p}), Event{}); err != nil {
				t.Fatal(err)
			}
		}
		tests := []struct {
			prefix string
			want   []string
		}{
			{"/dir/", []string{"/dir/a.csv", "/dir/sub/b.csv"}},
			{"/d_r/", []string{"/d_r/e.csv"}},
			{"/DIR/", []string{"/DIR/c.csv"}},
			{"/nothing/", nil},
		}
		for _, tt := range tests {
			trs, err := l.List(ctx, Filter{Supplier: "acme", PathPrefix: tt.prefix})
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, tr := range trs {
				got = append(got, tr.Path)
			}
			slices.Sort(got)
			if !slices.Equal(got, tt.want) {
				t.Errorf("prefix %q: got %v, want %v", tt.prefix, got, tt.want)
			}
		}
	})
}

func TestPrefixUpperBound(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in, want string
		ok       bool
	}{
		{"/dir/", "/dir0", true},
		{"a", "b", true},
		{"a\xff", "b", true},
		{"\xff\xff", "", false},
	}
	for _, tt := range tests {
		if got, ok := prefixUpperBound(tt.in); got != tt.want || ok != tt.ok {
			t.Errorf("prefixUpperBound(%q) = %q, %v; want %q, %v", tt.in, got, ok, tt.want, tt.ok)
		}
	}
}
