package storage

import (
	"errors"
	"path/filepath"
	"testing"
)

func TestCache(t *testing.T) {
	t.Parallel()
	dir := filepath.Join(t.TempDir(), "dest")
	opened := 0
	c := &Cache{Opened: func(*Store) error { opened++; return nil }}
	a, err := c.Open(t.Context(), dir)
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.Open(t.Context(), dir)
	if err != nil || a != b || opened != 1 {
		t.Fatalf("second Open = %p, %v; first %p; Opened ran %d times", b, err, a, opened)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if b, err = c.Open(t.Context(), dir); err != nil || b == a || opened != 2 {
		t.Fatalf("Open after Close = %p, %v; Opened ran %d times", b, err, opened)
	}

	refuse := errors.New("not today")
	failing := &Cache{Opened: func(*Store) error { return refuse }}
	if _, err := failing.Open(t.Context(), dir); !errors.Is(err, refuse) {
		t.Fatalf("Open with a failing hook = %v", err)
	}
	if _, err := c.Open(t.Context(), "nope://x"); err == nil {
		t.Fatal("Open of an unknown scheme succeeded")
	}
}
