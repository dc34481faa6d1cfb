package storage_test

import (
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/airlock-gw/airlock/internal/storage"
	"github.com/airlock-gw/airlock/internal/storage/storagetest"
	"github.com/airlock-gw/airlock/internal/testpeer"
)

// Every kind of store runs the one conformance suite.

func TestConformanceDir(t *testing.T) {
	t.Parallel()
	storagetest.Run(t, storagetest.Harness{
		Open:      func(t *testing.T) *storage.Store { return mustOpen(t, filepath.Join(t.TempDir(), "store")) },
		Resumable: true,
	})
}

func TestConformanceMem(t *testing.T) {
	t.Parallel()
	storagetest.Run(t, storagetest.Harness{
		Open: func(t *testing.T) *storage.Store { return mustOpen(t, "mem://") },
	})
}

// TestConformanceS3 runs on a real versitygw, each store a fresh prefix of
// one bucket.
func TestConformanceS3(t *testing.T) {
	v := testpeer.StartVersity(t, "conformance")
	v.Setenv(t)
	var n atomic.Int64
	storagetest.Run(t, storagetest.Harness{
		Open: func(t *testing.T) *storage.Store {
			return mustOpen(t, testpeer.S3URL(v.Addr, "conformance", fmt.Sprintf("store-%d", n.Add(1))))
		},
		Resumable: true,
	})
}

func mustOpen(t *testing.T, location string) *storage.Store {
	t.Helper()
	st, err := storage.Open(t.Context(), location)
	if err != nil {
		t.Fatal(err)
	}
	return st
}
