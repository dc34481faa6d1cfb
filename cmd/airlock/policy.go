package main

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/policy"
	"github.com/airlock-gw/airlock/internal/storage"
)

func newPolicyCmd(g *globals) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policy",
		Short: "Print the bucket, KMS key and IAM policies the owners of airlock's buckets and keys apply",
		Long: "Print, as JSON, every document the owner of a bucket, a KMS key or an IAM role must apply\n" +
			"for a supplier, a dataset or a route. The ARNs come from the policy section of airlock.yaml.\n" +
			"--apply puts a bucket policy airlock owns (a pull dataset's bucket) with S3 PutBucketPolicy,\n" +
			"with the credentials of the AWS environment; it is audited (policy.applied).",
	}
	cmd.AddCommand(
		policySubcommand(g, "supplier", "the ingestion role's statements on a supplier's destination bucket and KMS key",
			func(cfg *config.Config, name string) (*policy.Set, error) {
				s, ok := cfg.Suppliers.Lookup(name)
				if !ok {
					return nil, fmt.Errorf("unknown supplier %q", name)
				}
				return policy.Supplier(cfg.Policy, s)
			}),
		policySubcommand(g, "dataset", "a push dataset's write-only prefix and mover statements, or a pull dataset's bucket and key policies",
			func(cfg *config.Config, name string) (*policy.Set, error) {
				d, ok := cfg.Datasets.Lookup(name)
				if !ok {
					return nil, fmt.Errorf("unknown dataset %q", name)
				}
				return policy.Dataset(cfg.Policy, d, cfg.Exports)
			}),
		policySubcommand(g, "route", "the statements a route's source and destination need",
			func(cfg *config.Config, name string) (*policy.Set, error) {
				r, ok := cfg.Routes.Lookup(name)
				if !ok {
					return nil, fmt.Errorf("unknown route %q", name)
				}
				return policy.Route(cfg.Policy, r)
			}),
	)
	return cmd
}

// policySubcommand is `airlock policy KIND NAME [--apply]`.
func policySubcommand(g *globals, kind, short string, build func(cfg *config.Config, name string) (*policy.Set, error)) *cobra.Command {
	var apply bool
	cmd := &cobra.Command{
		Use:   kind + " NAME",
		Short: "Print " + short,
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := config.Load(g.configPath)
			if err != nil {
				return err
			}
			set, err := build(cfg, args[0])
			if err != nil {
				return err
			}
			out, err := policy.JSON(set)
			if err != nil {
				return err
			}
			if _, err := cmd.OutOrStdout().Write(out); err != nil {
				return err
			}
			if !apply {
				return nil
			}
			return applyBucketPolicies(cmd, cfg, set)
		},
	}
	cmd.Flags().BoolVar(&apply, "apply", false, "put the bucket policy airlock owns (a pull dataset's) on its bucket")
	return cmd
}

// applyBucketPolicies puts every whole bucket policy of set, and audits it.
func applyBucketPolicies(cmd *cobra.Command, cfg *config.Config, set *policy.Set) error {
	ctx := cmd.Context()
	var l *ledger.Ledger
	applied := 0
	for _, d := range set.Documents {
		if d.Kind != policy.BucketPolicy {
			continue
		}
		if l == nil {
			var err error
			if l, err = ledger.Open(ctx, cfg.Database); err != nil {
				return err
			}
			defer l.Close()
		}
		doc, err := json.Marshal(d.Policy)
		if err != nil {
			return err
		}
		if err := storage.PutBucketPolicy(ctx, d.Location, doc); err != nil {
			return err
		}
		sum := sha256.Sum256(doc)
		ev := ledger.Event{Kind: "policy.applied", Actor: operatorName(), Detail: map[string]string{
			"subject": set.Subject, "bucket": d.Target, "sha256": hex.EncodeToString(sum[:]),
		}}
		if _, err := l.Append(ctx, ev); err != nil {
			return fmt.Errorf("policy of %s applied, but not audited: %w", d.Target, err)
		}
		fmt.Fprintf(cmd.ErrOrStderr(), "applied the bucket policy of %s\n", d.Target)
		applied++
	}
	if applied == 0 {
		return fmt.Errorf("nothing to apply: %s has no bucket policy that airlock owns; its documents are for the owners of those buckets, keys and roles to add to theirs", set.Subject)
	}
	return nil
}
