package main

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"

	"github.com/airlock-gw/airlock/internal/audit"
	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/storage"
)

func newAuditCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Work with the tamper-evident audit chain"}
	var publicKey string
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Check the audit chain, the transfer rows against it, and the chain against the signed checkpoints; exit 1 on any disagreement",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := config.Load(g.configPath)
			if err != nil {
				return err
			}
			l, err := ledger.Open(cmd.Context(), cfg.Database)
			if err != nil {
				return err
			}
			defer l.Close()
			return verifyAudit(cmd.Context(), cfg, l, publicKey, cmd.OutOrStdout(), cmd.ErrOrStderr())
		},
	}
	verify.Flags().StringVar(&publicKey, "public-key", "",
		"the checkpoint key's public half (FILE.pub, ssh-ed25519); default: derived from audit.signing_key")
	cmd.AddCommand(verify, newAuditExportCmd(g))
	return cmd
}

func verifyAudit(ctx context.Context, cfg *config.Config, l *ledger.Ledger, publicKey string, stdout, stderr io.Writer) error {
	pub, err := checkpointKey(cfg, publicKey)
	if err != nil {
		return err
	}
	var anchors []ledger.Anchor
	var problems []ledger.Problem
	if pub == nil {
		fmt.Fprintf(stderr, "no audit key at %s: the chain is not checked against checkpoints (--public-key FILE names one)\n", cfg.Audit.SigningKey)
	} else if anchors, problems, err = loadAnchors(ctx, cfg.Audit.Checkpoints, pub, publicKey != "", stderr); err != nil {
		return err
	}
	v, err := l.Verify(ctx, anchors)
	if err != nil {
		return err
	}
	for i, p := range v.Problems {
		if i == 0 && v.Broken {
			fmt.Fprintf(stderr, "audit chain BROKEN at event %d: %s (the events after it and the transfer rows were not checked)\n", p.Seq, p.Reason)
			continue
		}
		problems = append(problems, p)
	}
	for _, p := range problems {
		fmt.Fprintf(stderr, "TAMPERED: %s\n", p)
	}
	if v.Omitted > 0 {
		fmt.Fprintf(stderr, "TAMPERED: %d more problems not listed\n", v.Omitted)
	}
	if n := int64(len(problems)) + v.Omitted; v.Broken || n > 0 {
		if v.Broken {
			n++
		}
		fmt.Fprintf(stderr, "audit verify: %d problems: the record is not intact\n", n)
		return exitError{code: 1}
	}
	fmt.Fprintf(stdout, "audit chain intact: %d events verified; %d transfer rows match their events", v.Events, v.Rows)
	if v.Unanchored > 0 {
		fmt.Fprintf(stdout, " (%d unanchored: last written before row digests, only their events' existence checked)", v.Unanchored)
	}
	if pub != nil {
		fmt.Fprintf(stdout, "; %d checkpoints of key %s agree", v.Anchors, audit.KeyID(pub))
	}
	fmt.Fprintln(stdout)
	return nil
}

// loadAnchors reads pub's checkpoints from the store at location. No
// checkpoint at all is a problem when required (an auditor named the key
// and expects its series: an empty one may have been emptied), else a
// warning.
func loadAnchors(ctx context.Context, location string, pub ed25519.PublicKey, required bool, stderr io.Writer) ([]ledger.Anchor, []ledger.Problem, error) {
	store, err := storage.Open(ctx, location)
	if err != nil {
		return nil, nil, err
	}
	defer store.Close()
	anchors, problems, err := audit.Load(ctx, store, pub)
	if err != nil || len(anchors)+len(problems) > 0 {
		return anchors, problems, err
	}
	p := ledger.Problem{Anchor: audit.KeyID(pub) + "/", Reason: fmt.Sprintf(
		"no checkpoints of this key in %s: the chain head is not anchored, so a rewrite of the chain would go unnoticed", store)}
	if required {
		return nil, []ledger.Problem{p}, nil
	}
	fmt.Fprintf(stderr, "WARNING: %s\n", p)
	return nil, nil, nil
}

// checkpointKey is the public key checkpoints are checked with: the file
// named, or else the half of the signing key, or nil when there is none.
func checkpointKey(cfg *config.Config, publicKey string) (ed25519.PublicKey, error) {
	if publicKey != "" {
		return audit.LoadPublicKey(publicKey)
	}
	if _, err := os.Stat(cfg.Audit.SigningKey); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	return audit.LoadPublicKey(cfg.Audit.SigningKey)
}

// newCheckpointer is serve's checkpointer, with its key loaded (generated
// on first start) and its store opened; the caller closes the store.
func newCheckpointer(ctx context.Context, cfg *config.Config, l *ledger.Ledger, log *slog.Logger, reg prometheus.Registerer) (*audit.Checkpointer, error) {
	key, err := audit.LoadSigningKey(cfg.Audit.SigningKey)
	if err != nil {
		return nil, err
	}
	store, err := storage.Open(ctx, cfg.Audit.Checkpoints)
	if err != nil {
		return nil, err
	}
	return &audit.Checkpointer{Chain: l, Store: store, Key: key, Node: cfg.Node, Every: cfg.Audit.CheckpointInterval,
		Log: log, Metrics: audit.NewMetrics(reg)}, nil
}
