package config

import "time"

// Audit anchors the audit chain outside the database: signed checkpoints
// of its head, written to a store of their own.
type Audit struct {
	// Checkpoints is where checkpoints are written: an absolute path, or a
	// store URL as written (S3 with object lock in production).
	Checkpoints string
	// SigningKey is the absolute path of the ed25519 key that signs them,
	// generated on first start when absent; the database never holds it.
	SigningKey string
	// CheckpointInterval is how often a checkpoint is written (and once
	// more at a clean stop).
	CheckpointInterval time.Duration
}

const (
	defaultCheckpoints        = "state/checkpoints"
	defaultAuditSigningKey    = "state/audit_ed25519"
	defaultCheckpointInterval = 5 * time.Minute
)

// parseAudit reads the audit section.
func parseAudit(c *checker, audit map[string]field, root string) Audit {
	return Audit{
		Checkpoints: c.value(audit["checkpoints"], defaultCheckpoints, root, parseStore),
		SigningKey: c.value(audit["signing_key"], defaultAuditSigningKey, root, func(s, root string) (string, error) {
			return resolvePath(root, s), nil
		}),
		CheckpointInterval: c.duration(audit["checkpoint_interval"], defaultCheckpointInterval, false),
	}
}
