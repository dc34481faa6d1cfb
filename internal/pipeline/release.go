package pipeline

import (
	"context"
	"database/sql"
	"fmt"

	"github.com/airlock-gw/airlock/internal/ledger"
)

// approveRelease records the operator's approval of the release requested
// of quarantined transfer tr. The approval that makes ReleaseApprovals
// people (at least one: a request made before the count was set to 0
// still needs someone else) releases it as Release does at once: rescanned
// unless the request said not to, queued in the same transaction.
func (o *Operator) approveRelease(ctx context.Context, tr ledger.Transfer) (ledger.Transfer, int, error) {
	if err := o.stillHeld(ctx, tr); err != nil {
		return ledger.Transfer{}, 0, fmt.Errorf("approve release of %s: %w", tr.ID, err)
	}
	queue := func(ctx context.Context, tx *sql.Tx, t ledger.Transfer, req ledger.ReleaseRequest) error {
		return insert(ctx, o.Queue.client, tx, ingestArgs{TransferID: t.ID, FromQuarantine: true, SkipScan: req.SkipRescan})
	}
	return o.Ledger.ApproveRelease(ctx, tr.ID, o.Person, max(o.ReleaseApprovals, 1), queue, ledger.Event{Actor: o.Actor})
}

// stillHeld checks the quarantined file of tr is still in the store.
func (o *Operator) stillHeld(ctx context.Context, tr ledger.Transfer) error {
	if tr.Destination == "" {
		return fmt.Errorf("%w: the quarantined file was deleted", ErrNotAllowed)
	}
	if _, err := o.Quarantine.Stat(ctx, quarantineKey(tr)); err != nil {
		return fmt.Errorf("%w: the quarantined file is gone: %v", ErrNotAllowed, err)
	}
	return nil
}
