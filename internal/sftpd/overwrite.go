package sftpd

import (
	"errors"
	"fmt"

	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/ledger"
)

// ErrOverwriteDenied refuses to write a name already delivered, or on its
// way to delivery, for a supplier whose overwrite policy is deny.
var ErrOverwriteDenied = errors.New("already delivered under this name, and this supplier's overwrite policy is deny: upload it under another name")

// The states in which a name is taken. An exclusive create (CREAT|EXCL)
// fails on a name with an upload open, on its way or delivered, as O_EXCL
// would on a file that exists. Under the deny policy a name is refused once
// an upload of it is received: one still being received may yet fail, and
// delivery checks again (see internal/pipeline).
var (
	exclusiveStates = []ledger.State{ledger.Receiving, ledger.Received, ledger.Scanning, ledger.Delivering, ledger.Delivered}
	denyStates      = []ledger.State{ledger.Received, ledger.Scanning, ledger.Delivering, ledger.Delivered}
)

// checkOverwrite refuses to open p for writing when the name is taken: for
// an exclusive create under every policy, for any write under deny. It costs
// at most one indexed read, and none for an ordinary open under allow or
// version, whose outcome delivery decides.
func (s *session) checkOverwrite(p string, exclusive bool) error {
	var states []ledger.State
	taken := ErrExists
	switch {
	case exclusive:
		states = exclusiveStates
	case s.supplier.Overwrite == config.OverwriteDeny && !s.srv.isTempName(p):
		states, taken = denyStates, ErrOverwriteDenied
	default:
		return nil
	}
	trs, err := s.srv.ledger.List(s.ctx, ledger.Filter{Direction: ledger.Ingress, Supplier: s.supplier.Name, Path: p, States: states, Limit: 1})
	switch {
	case err != nil:
		return wrapArea(err)
	case len(trs) == 0:
		return nil
	case trs[0].State == ledger.Delivered && taken == ErrExists:
		return fmt.Errorf("delivered already: %w", ErrExists)
	}
	return taken
}
