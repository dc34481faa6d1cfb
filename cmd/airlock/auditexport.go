package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/airlock-gw/airlock/internal/audit"
)

func newAuditExportCmd(g *globals) *cobra.Command {
	var (
		since, format, output, cursor string
		follow                        bool
		every                         time.Duration
	)
	cmd := &cobra.Command{
		Use:   "export [--since T] [--follow] [--output FILE | --cursor FILE] --format ecs",
		Short: "Write audit events as Elastic Common Schema JSON lines, for Filebeat, Fluent Bit or Vector",
		Long: `Write audit events, oldest first, one ECS JSON document a line.

With --output FILE the events are appended to FILE, which is its own cursor:
a restart (after a kill even) goes on after its last whole line, so each
event is in it exactly once. Without it they go to standard output; with
--cursor FILE the seq of the last event written is kept there after each
batch, and a restart goes on from it (a kill may repeat one batch: event.id,
the event's chain hash, tells a repeat apart).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if format != "ecs" {
				return fmt.Errorf("--format %q: the only format is ecs", format)
			}
			if output != "" && cursor != "" {
				return errors.New("--output is its own cursor: give --output or --cursor, not both")
			}
			x := &audit.Exporter{Follow: follow, Every: every}
			var err error
			if x.Since, err = parseSince(since, time.Now()); err != nil {
				return err
			}
			l, err := g.openLedger(cmd.Context())
			if err != nil {
				return err
			}
			defer l.Close()
			x.Events = l
			if output != "" {
				return x.ExportFile(cmd.Context(), output)
			}
			seq, err := readCursor(cursor)
			if err != nil {
				return err
			}
			return x.Export(cmd.Context(), seq, cmd.OutOrStdout(), func(seq int64) error { return saveCursor(cursor, seq) })
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "only events at or after this time (RFC 3339) or this long ago (24h, 7d)")
	cmd.Flags().BoolVar(&follow, "follow", false, "keep writing new events as they are appended, until stopped")
	cmd.Flags().DurationVar(&every, "every", time.Second, "with --follow, how often to look for new events")
	cmd.Flags().StringVar(&output, "output", "", "append to this file, resuming after its last event")
	cmd.Flags().StringVar(&cursor, "cursor", "", "keep the last seq written to standard output in this file, and resume from it")
	cmd.Flags().StringVar(&format, "format", "ecs", "output format: ecs")
	return cmd
}

// parseSince reads --since: a time, or a duration before now.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	if days, ok := strings.CutSuffix(s, "d"); ok {
		if n, err := strconv.Atoi(days); err == nil && n >= 0 {
			return now.Add(-time.Duration(n) * 24 * time.Hour), nil
		}
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("--since %q: want a time (2026-12-01T00:00:00Z) or a duration ago (24h, 7d)", s)
}

// readCursor returns the seq kept in file; 0 when file is "" or absent.
func readCursor(file string) (int64, error) {
	if file == "" {
		return 0, nil
	}
	b, err := os.ReadFile(file)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("--cursor: %w", err)
	}
	seq, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil || seq < 0 {
		return 0, fmt.Errorf("--cursor %s: %q is not an event seq", file, strings.TrimSpace(string(b)))
	}
	return seq, nil
}

// saveCursor keeps seq in file, replaced whole (a kill leaves the old
// value or the new, never a mix).
func saveCursor(file string, seq int64) error {
	if file == "" {
		return nil
	}
	tmp, err := os.CreateTemp(filepath.Dir(file), ".cursor-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name()) // gone after the rename: nothing to report
	if _, err := fmt.Fprintf(tmp, "%d\n", seq); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), file)
}
