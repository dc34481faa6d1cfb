package storagetest

import (
	"errors"
	"slices"
	"testing"

	"github.com/airlock-gw/airlock/internal/storage"
)

// walked returns the keys Walk gives for prefix, in its order.
func walked(t *testing.T, st *storage.Store, prefix string) []string {
	t.Helper()
	var out []string
	err := st.Walk(t.Context(), prefix, func(a storage.Attributes) error {
		out = append(out, a.Key)
		return nil
	})
	if err != nil {
		t.Fatalf("Walk(%q): %v", prefix, err)
	}
	return out
}

// walk: a recursive listing, in key order, of what is complete, with the
// sizes written; staged and suspended writes are not in it.
func walk(t *testing.T, h Harness) {
	st := open(t, h)
	all := []string{"p/1", "p/2", "p/q/3", "p/q/r/4", "pq/5", "z"}
	for i, k := range all {
		Put(t, st, k, Data(10*i))
	}
	for _, tt := range []struct {
		prefix string
		want   []string
	}{
		{"", all},
		{"p/", []string{"p/1", "p/2", "p/q/3", "p/q/r/4"}},
		{"p", []string{"p/1", "p/2", "p/q/3", "p/q/r/4", "pq/5"}},
		{"p/q", []string{"p/q/3", "p/q/r/4"}},
		{"p/q/r/4", []string{"p/q/r/4"}},
		{"nothing/", nil},
	} {
		if got := walked(t, st, tt.prefix); !slices.Equal(got, tt.want) {
			t.Errorf("Walk(%q) = %v, want %v", tt.prefix, got, tt.want)
		}
	}
	err := st.Walk(t.Context(), "", func(a storage.Attributes) error {
		if want := int64(10 * slices.Index(all, a.Key)); a.Size != want || a.ModTime == 0 {
			t.Errorf("Walk gave %s with %d bytes, modified %d; want %d bytes and a time", a.Key, a.Size, a.ModTime, want)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Where there is an ETag, other bytes of the same size change it.
	etag := func() string {
		var tag string
		if err := st.Walk(t.Context(), "z", func(a storage.Attributes) error { tag = a.ETag; return nil }); err != nil {
			t.Fatal(err)
		}
		return tag
	}
	before := etag()
	Put(t, st, "z", Data(10*(len(all)-1) + 1)[1:])
	if after := etag(); before != "" && after == before {
		t.Errorf("rewritten with other bytes, z kept its ETag %s", before)
	}
	stop := errors.New("stop")
	n := 0
	if err := st.Walk(t.Context(), "", func(storage.Attributes) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
		t.Errorf("Walk whose fn fails = %v after %d calls, want its error after 1", err, n)
	}

	// Neither a write in progress (a multipart upload on S3) nor a
	// suspended one is an object.
	w, err := st.Stage(t.Context(), "p/staged", Large)
	if err != nil {
		t.Fatal(err)
	}
	write(t, w, Data(Large))
	r, err := st.StageResumable(t.Context(), "p/kept", Large)
	if err != nil {
		t.Fatal(err)
	}
	write(t, r, Data(Large))
	if _, err := r.Suspend(t.Context()); err != nil && !errors.Is(err, storage.ErrCannotSuspend) {
		t.Fatal(err)
	}
	if got := walked(t, st, ""); !slices.Equal(got, all) {
		t.Errorf("Walk while a write is staged and one suspended = %v, want %v", got, all)
	}
	if err := w.Commit(); err != nil {
		t.Fatal(err)
	}
	if got := walked(t, st, "p/s"); !slices.Equal(got, []string{"p/staged"}) {
		t.Errorf("Walk after the commit = %v, want [p/staged]", got)
	}
}
