package audit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger"
)

// Events is the part of the ledger an export reads.
type Events interface {
	EventsAfter(ctx context.Context, seq int64, since time.Time, limit int) ([]ledger.Event, error)
	Get(ctx context.Context, id string) (ledger.Transfer, error)
}

// exportBatch is how many events an export reads and writes at once.
const exportBatch = 1000

// Exporter writes the audit events after a cursor as ECS JSON lines.
type Exporter struct {
	Events Events
	Since  time.Time // only events at or after it; zero: all
	// Follow waits for new events, polling every Every, until ctx ends.
	Follow bool
	Every  time.Duration
}

// ExportFile appends the events to the file at name, which is its own
// cursor: each batch of lines is written in one write and synced, and a
// restart goes on after the last whole line (cutting a line a kill left
// half written), so each event is in the file exactly once.
func (x *Exporter) ExportFile(ctx context.Context, name string) error {
	f, err := os.OpenFile(name, os.O_RDWR|os.O_CREATE, 0o640)
	if err != nil {
		return fmt.Errorf("audit export: %w", err)
	}
	defer f.Close()
	seq, end, err := lastExported(f)
	if err != nil {
		return fmt.Errorf("audit export: %s: %w", name, err)
	}
	if err := f.Truncate(end); err != nil {
		return fmt.Errorf("audit export: %w", err)
	}
	if _, err := f.Seek(end, io.SeekStart); err != nil {
		return fmt.Errorf("audit export: %w", err)
	}
	return x.Export(ctx, seq, f, func(int64) error { return f.Sync() })
}

// Export writes the events after seq to w, calling commit with the seq of
// the last one after each batch is written: a cursor saved there repeats
// at most one batch after a kill (event.id tells a repeat apart).
func (x *Exporter) Export(ctx context.Context, seq int64, w io.Writer, commit func(int64) error) error {
	var buf bytes.Buffer
	for {
		evs, err := x.Events.EventsAfter(ctx, seq, x.Since, exportBatch)
		if err != nil {
			return err
		}
		if len(evs) > 0 {
			buf.Reset()
			if err := x.encode(ctx, &buf, evs); err != nil {
				return err
			}
			if _, err := w.Write(buf.Bytes()); err != nil {
				return fmt.Errorf("audit export: %w", err)
			}
			seq = evs[len(evs)-1].Seq
			if err := commit(seq); err != nil {
				return fmt.Errorf("audit export: %w", err)
			}
		}
		if len(evs) == exportBatch {
			continue
		}
		if !x.Follow {
			return nil
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(x.Every):
		}
	}
}

// encode writes evs as JSON lines, with their transfers looked up once.
func (x *Exporter) encode(ctx context.Context, buf *bytes.Buffer, evs []ledger.Event) error {
	transfers := map[string]*ledger.Transfer{}
	enc := json.NewEncoder(buf)
	for _, ev := range evs {
		t, seen := transfers[ev.TransferID]
		if ev.TransferID != "" && !seen {
			tr, err := x.Events.Get(ctx, ev.TransferID)
			switch {
			case err == nil:
				t = &tr
			case !errors.Is(err, ledger.ErrNotFound):
				return err
			}
			transfers[ev.TransferID] = t
		}
		if err := enc.Encode(ToECS(ev, t)); err != nil {
			return err
		}
	}
	return nil
}

// lastExported reads the seq of the last whole line of f and where that
// line ends: a line cut short is not counted.
func lastExported(f *os.File) (seq, end int64, err error) {
	fi, err := f.Stat()
	if err != nil {
		return 0, 0, err
	}
	size := fi.Size()
	for chunk := int64(64 << 10); ; chunk *= 2 {
		from := max(0, size-chunk)
		buf := make([]byte, size-from)
		if _, err := f.ReadAt(buf, from); err != nil && !errors.Is(err, io.EOF) {
			return 0, 0, err
		}
		nl := bytes.LastIndexByte(buf, '\n')
		if nl < 0 && from > 0 {
			continue // the last line is longer than the chunk
		}
		if nl < 0 {
			return 0, 0, nil // no whole line
		}
		prev := bytes.LastIndexByte(buf[:nl], '\n')
		if prev < 0 && from > 0 {
			continue
		}
		var doc struct {
			Event struct {
				Sequence int64 `json:"sequence"`
			} `json:"event"`
		}
		if err := json.Unmarshal(buf[prev+1:nl], &doc); err != nil || doc.Event.Sequence <= 0 {
			return 0, 0, fmt.Errorf("the last line is not an exported event (%v): export to a new file", err)
		}
		return doc.Event.Sequence, from + int64(nl) + 1, nil
	}
}
