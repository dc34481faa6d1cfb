package main

import (
	"path/filepath"
	"testing"
	"time"
)

func TestParseSince(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 12, 8, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		want time.Time
		bad  bool
	}{
		{"", time.Time{}, false},
		{"2026-12-01T00:00:00Z", time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), false},
		{"24h", now.Add(-24 * time.Hour), false},
		{"7d", now.Add(-7 * 24 * time.Hour), false},
		{"-1h", time.Time{}, true},
		{"yesterday", time.Time{}, true},
	}
	for _, tt := range tests {
		got, err := parseSince(tt.in, now)
		if (err != nil) != tt.bad || !got.Equal(tt.want) {
			t.Errorf("parseSince(%q) = %v, %v", tt.in, got, err)
		}
	}
}

func TestCursor(t *testing.T) {
	t.Parallel()
	file := filepath.Join(t.TempDir(), "cursor")
	if seq, err := readCursor(file); seq != 0 || err != nil {
		t.Fatalf("absent cursor: %d, %v", seq, err)
	}
	for _, seq := range []int64{1000, 2005} {
		if err := saveCursor(file, seq); err != nil {
			t.Fatal(err)
		}
		if got, err := readCursor(file); got != seq || err != nil {
			t.Errorf("cursor %d read back as %d, %v", seq, got, err)
		}
	}
}
