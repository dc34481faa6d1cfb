package config

import (
	"math"
	"strconv"
	"testing"
)

func TestParseSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in      string
		want    Size
		wantErr string
	}{
		{in: "5GB", want: 5_000_000_000},
		{in: "5 GB", want: 5_000_000_000},
		{in: " 5gb ", want: 5_000_000_000},
		{in: "5GiB", want: 5 << 30},
		{in: "500MB", want: 500_000_000},
		{in: "500 mib", want: 500 << 20},
		{in: "1024", want: 1024},
		{in: "1024B", want: 1024},
		{in: "1.5GB", want: 1_500_000_000},
		{in: "1.5 KiB", want: 1536},
		{in: "2TB", want: 2e12},
		{in: "1TiB", want: 1 << 40},
		{in: "1kb", want: 1000},
		{in: "0", want: 0},
		{in: "9223372036854775807", want: math.MaxInt64},
		{in: "", wantErr: `invalid size "": want a number and a unit, like "5GB"`},
		{in: "GB", wantErr: `invalid size "GB": want a number and a unit, like "5GB"`},
		{in: "-1GB", wantErr: `invalid size "-1GB": want a number and a unit, like "5GB"`},
		{in: "1e9", wantErr: `invalid size "1e9": want a number and a unit, like "5GB"`},
		{in: "5G", wantErr: `invalid size "5G": unknown unit "G" (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)`},
		{in: "5 PB", wantErr: `invalid size "5 PB": unknown unit "PB" (use B, KB, MB, GB, TB, KiB, MiB, GiB or TiB)`},
		{in: "1.", wantErr: `invalid size "1.": want a number and a unit, like "5GB"`},
		{in: "0.1B", wantErr: `invalid size "0.1B": not a whole number of bytes`},
		{in: "1.0000001KB", wantErr: `invalid size "1.0000001KB": not a whole number of bytes`},
		{in: "9223372036854775808", wantErr: `invalid size "9223372036854775808": too large`},
		{in: "10000000TB", wantErr: `invalid size "10000000TB": too large`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			t.Parallel()
			got, err := ParseSize(tt.in)
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("ParseSize(%q) = %d, %v; want error %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseSize(%q) = %d, %v; want %d", tt.in, got, err, tt.want)
			}
		})
	}
}

func TestSizeString(t *testing.T) {
	t.Parallel()
	tests := []struct {
		in   Size
		want string
	}{
		{0, "0 B"},
		{123, "123 B"},
		{1000, "1 KB"},
		{1024, "1 KiB"},
		{1536, "1.5 KiB"},
		{1500, "1.5 KB"},
		{1023, "1023 B"},
		{1010, "1.01 KB"},
		{5_000_000_000, "5 GB"},
		{5 << 30, "5 GiB"},
		{1_500_000_000, "1.5 GB"},
		{1 << 40, "1 TiB"},
		{3e12, "3 TB"},
		{1_234_567, "1234567 B"},
		{math.MaxInt64, "9223372036854775807 B"},
		{-5, "-5 B"},
	}
	for _, tt := range tests {
		t.Run(strconv.FormatInt(int64(tt.in), 10), func(t *testing.T) {
			t.Parallel()
			if got := tt.in.String(); got != tt.want {
				t.Errorf("Size(%d).String() = %q, want %q", int64(tt.in), got, tt.want)
			}
		})
	}
}

// FuzzParseSize: ParseSize never panics, never returns a negative size, and
// what it accepts prints back to the same value.
func FuzzParseSize(f *testing.F) {
	for _, seed := range []string{"5GB", "5 GiB", "1.5gb", "1024", "0.5KiB", "99999999999999999999", "1.", "-1"} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v, err := ParseSize(s)
		if err != nil {
			return
		}
		if v < 0 {
			t.Fatalf("ParseSize(%q) = %d", s, v)
		}
		back, err := ParseSize(v.String())
		if err != nil || back != v {
			t.Fatalf("ParseSize(%q) = %d, printed %q, parsed back as %d, %v", s, v, v.String(), back, err)
		}
	})
}
