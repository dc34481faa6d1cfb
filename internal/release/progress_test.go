package release

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestProgress(t *testing.T) {
	t.Parallel()
	events := []Event{
		{Type: EvRelease, Files: 2, Size: 30 << 20},
		{Type: EvSkip, Key: "p/a.csv", Size: 10 << 20, Reason: "already complete"},
		{Type: EvStart, Key: "p/big.bin", Size: 20 << 20},
		{Type: EvProgress, Key: "p/big.bin", Size: 20 << 20, Bytes: 10 << 20},
		{Type: EvDone, Key: "p/big.bin", Size: 20 << 20, Bytes: 20 << 20, Resumed: 5 << 20},
		{Type: EvManifest, Key: "p/" + ManifestName},
	}
	for _, tty := range []bool{false, true} {
		var out bytes.Buffer
		p := NewProgress(&out, tty, time.Hour)
		for _, e := range events {
			p.Report(e)
			if tty && e.Type == EvProgress {
				p.mu.Lock()
				p.redraw()
				p.mu.Unlock()
			}
		}
		p.Close()
		s := out.String()
		for _, want := range []string{"skipped  p/a.csv", "sent     p/big.bin (20.0 MiB, 5.0 MiB resumed)", "manifest p/" + ManifestName + ": written", "2/2 files  30.0 MiB of 30.0 MiB"} {
			if !strings.Contains(s, want) {
				t.Errorf("tty=%v: no %q in\n%s", tty, want, s)
			}
		}
		hasESC := strings.ContainsRune(s, 0x1b)
		if hasESC != tty {
			t.Errorf("tty=%v: escape sequences %v in\n%q", tty, hasESC, s)
		}
		if tty && !strings.Contains(s, "p/big.bin") || tty && !strings.Contains(s, " 50% 10.0 MiB") {
			t.Errorf("tty: no bar for p/big.bin at 50%% in\n%q", s)
		}
	}
}
