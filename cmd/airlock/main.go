// Command airlock is the secure data-transfer gateway. This package only
// wires the internal packages together behind a cobra command line.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/airlock-gw/airlock/internal/clip"
	"github.com/airlock-gw/airlock/internal/releasecmd"
)

// exitError carries a process exit code for an error already reported.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// The first signal stops gracefully (serve drains); with the handler
	// gone, a second one ends the process at once.
	context.AfterFunc(ctx, stop)
	err := newRootCmd().ExecuteContext(ctx)
	stop()
	var ee exitError
	switch {
	case errors.As(err, &ee):
		os.Exit(ee.code)
	case err != nil:
		fmt.Fprintln(os.Stderr, "airlock:", err)
		os.Exit(1)
	}
}

// globals are the flags every command takes.
type globals struct {
	configPath string
	logFormat  string
	logLevel   string
}

func newRootCmd() *cobra.Command {
	g := &globals{}
	root := &cobra.Command{
		Use:           "airlock",
		Short:         "Secure data-transfer gateway: SFTP ingestion, scanning, delivery and egress",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&g.configPath, "config", "airlock.yaml", "path of airlock.yaml")
	root.PersistentFlags().StringVar(&g.logFormat, "log-format", "json", "log format: json or text")
	root.PersistentFlags().StringVar(&g.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	root.AddCommand(
		newServeCmd(g),
		newValidateCmd(g),
		newMigrateCmd(g),
		newTransfersCmd(g),
		newAuditCmd(g),
		newKeysCmd(g),
		newQuarantineCmd(g),
		newApprovalsCmd(g),
		newBatchesCmd(g),
		newBansCmd(g),
		newDemoCmd(g),
		newPolicyCmd(g),
		releasecmd.New("airlock release"),
	)
	return root
}

func (g *globals) logger() (*slog.Logger, error) {
	var level slog.Level
	if err := level.UnmarshalText([]byte(g.logLevel)); err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	// Clipped: a client chooses many of the strings logged (user names,
	// paths), and must not be able to make a line much longer than that.
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: clip.Attr}
	switch g.logFormat {
	case "json":
		return slog.New(slog.NewJSONHandler(os.Stderr, opts)), nil
	case "text":
		return slog.New(slog.NewTextHandler(os.Stderr, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want json or text", g.logFormat)
}
