package storage

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

func TestSuspendResumeLocal(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	root := t.TempDir()
	s := openStore(t, root)
	write := func(st *Staged, p string) {
		t.Helper()
		if _, err := st.Write([]byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	st, err := s.Stage(ctx, "acme/x.bin", 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	write(st, "hello, ")
	cp, err := st.Suspend(ctx)
	if err != nil || cp.Size != 7 {
		t.Fatalf("Suspend = %+v, %v; want 7 bytes kept", cp, err)
	}
	if _, err := s.Stat(ctx, "acme/x.bin"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("a suspended write is visible under its key: %v", err)
	}
	if entries, err := s.List(ctx, ""); err != nil || len(entries) != 0 {
		t.Fatalf("List = %v, %v; want the kept file left out", entries, err)
	}
	if _, err := os.Stat(filepath.Join(root, StagingDir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("staging directory left behind: %v", err)
	}

	// A crash after more bytes reached the file: they are cut off.
	kept, _ := keptName(cp)
	f, err := os.OpenFile(filepath.Join(root, KeptDir, kept), os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteString("GARBAGE")
	f.Close()

	st, err = s.Resume(ctx, "acme/x.bin", 1<<20, cp)
	if err != nil {
		t.Fatal(err)
	}
	write(st, "world")
	if err := st.Commit(); err != nil {
		t.Fatal(err)
	}
	r, err := s.NewRangeReader(ctx, "acme/x.bin", 0, -1)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	r.Close()
	if string(got) != "hello, world" {
		t.Errorf("resumed object = %q, want %q", got, "hello, world")
	}
	for _, dir := range []string{StagingDir, KeptDir} {
		if _, err := os.Stat(filepath.Join(root, dir)); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("%s left behind: %v", dir, err)
		}
	}
	// Resuming twice finds nothing kept.
	if _, err := s.Resume(ctx, "acme/x.bin", 1<<20, cp); !errors.Is(err, ErrNotFound) {
		t.Errorf("second Resume = %v; want ErrNotFound", err)
	}
}

func TestDiscardSuspended(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	root := t.TempDir()
	s := openStore(t, root)
	st, err := s.Stage(ctx, "k", 100)
	if err != nil {
		t.Fatal(err)
	}
	st.Write([]byte("abc"))
	cp, err := st.Suspend(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for range 2 { // a retry finds nothing and is content
		if err := s.DiscardSuspended(ctx, "k", cp); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := os.Stat(filepath.Join(root, KeptDir)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("kept directory left behind: %v", err)
	}
	if err := s.DiscardSuspended(ctx, "k", Checkpoint{State: `{"file":"../x"}`}); err == nil {
		t.Errorf("a checkpoint naming a file outside the kept directory was accepted")
	}
}
