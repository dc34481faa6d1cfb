package sftpd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/airlock-gw/airlock/internal/names"
	"io"
	"os"
	"path"
	"strings"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger"
)

// A receipt is a read-only file, <name>.receipt.json, next to where <name>
// was uploaded once the pipeline has settled it, so that a supplier can
// show what arrived and what became of it without asking anyone. It is
// served by name (stat, read) and not listed: listings show only what the
// supplier uploaded. Receipts are made from the ledger on each request;
// nothing is stored for them.
const receiptSuffix = ".receipt.json"

// settledStates are the outcomes a receipt tells of.
var settledStates = []ledger.State{ledger.Delivered, ledger.Quarantined, ledger.Failed}

// Receipt is the JSON a supplier reads in <name>.receipt.json. It holds no
// internal detail: no bucket names and no error text, only what the
// supplier sent and the verdict.
type Receipt struct {
	TransferID string    `json:"transfer_id"`
	Path       string    `json:"path"`
	Size       int64     `json:"size"`
	SHA256     string    `json:"sha256"`
	Outcome    string    `json:"outcome"`
	ScanResult string    `json:"scan_result,omitempty"`
	ReceivedAt time.Time `json:"received_at"`
	SettledAt  time.Time `json:"settled_at"`
	Note       string    `json:"note,omitempty"`
}

func receiptOf(tr ledger.Transfer) []byte {
	r := Receipt{
		TransferID: tr.ID, Path: tr.Path, Size: tr.Size, SHA256: tr.SHA256, Outcome: string(tr.State),
		ScanResult: tr.ScanResult, ReceivedAt: tr.CreatedAt, SettledAt: tr.UpdatedAt,
	}
	switch tr.State {
	case ledger.Quarantined:
		r.Note = "the file was not delivered; the operators have been told. Quote the transfer id to them."
	case ledger.Failed:
		r.Note = "the file was not delivered. Send it again, or ask the operators, quoting the transfer id."
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		panic(fmt.Sprintf("marshal receipt: %v", err)) // plain strings, numbers and times always marshal
	}
	return append(b, '\n')
}

func isReceiptName(p string) bool { return strings.HasSuffix(p, receiptSuffix) }

// checkNotReceipt keeps the receipt names for receipts: an upload or a
// directory under such a name would hide or fake one.
func checkNotReceipt(p string) error {
	if isReceiptName(p) {
		return &names.Error{Name: path.Base(p), Rule: "names ending in " + receiptSuffix + " are kept for receipts"}
	}
	return nil
}

// receiptAt returns the newest settled transfer whose receipt is at p.
func (s *session) receiptAt(p string) (ledger.Transfer, bool, error) {
	if !isReceiptName(p) || s.srv.receiptRetention <= 0 {
		return ledger.Transfer{}, false, nil
	}
	trs, err := s.srv.ledger.List(s.ctx, ledger.Filter{
		Direction: ledger.Ingress, Supplier: s.supplier.Name, Path: strings.TrimSuffix(p, receiptSuffix), States: settledStates,
		UpdatedSince: s.receiptsSince(), Limit: 1,
	})
	if err != nil || len(trs) == 0 {
		return ledger.Transfer{}, false, wrapArea(err)
	}
	return trs[0], true, nil
}

func (s *session) receiptsSince() time.Time { return s.srv.now().Add(-s.srv.receiptRetention) }

func receiptInfo(tr ledger.Transfer) os.FileInfo {
	return &fileInfo{
		name: path.Base(tr.Path) + receiptSuffix, size: int64(len(receiptOf(tr))),
		mode: 0o400, modTime: tr.UpdatedAt,
	}
}

// openReceipt serves a receipt for reading.
func (s *session) openReceipt(p string) (io.ReaderAt, error) {
	tr, ok, err := s.receiptAt(p)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, ErrWriteOnly
	}
	return bytes.NewReader(receiptOf(tr)), nil
}
