package ledger

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
)

// RowKey is the detail key of the event that creates or changes a transfer
// row: its value is the row's digest as the change left it. The event's hash
// covers its detail, so the chain vouches for every column of the row, and
// audit verify finds a row that no longer matches its latest event.
const RowKey = "row"

// rowVersion names the encoding rowDigest hashes, and prefixes the digest.
// A new encoding gets a new version; verify keeps reading the old ones.
// v2 is v1 followed by the mtime and hidden_at columns (NULL as "", which
// no stored time is); a row with both NULL is still digested as v1, so
// that its digest is what it always was. v3 is v2 followed by the route
// and batch columns, for a row that has either: rows without keep theirs.
const (
	rowVersion      = "v1"
	rowVersionMT    = "v2"
	rowVersionRoute = "v3"
)

// anchorRow sets ev's RowKey to the digest of t, the row as ev's
// transaction leaves it. ev.Detail must be ev's own map (or nil).
func anchorRow(ev *Event, t Transfer) {
	if ev.Detail == nil {
		ev.Detail = map[string]string{}
	}
	ev.Detail[RowKey] = rowDigest(t, formatTime(t.CreatedAt), formatTime(t.UpdatedAt), storedTime(t.MTime), storedTime(t.HiddenAt))
}

// storedTime is a nullable time column as stored: NULL (nil) or its text.
func storedTime(at *time.Time) any {
	if at == nil {
		return nil
	}
	return formatTime(*at)
}

// rowDigest is rowVersion + ":" + hex(sha256) of every column of the row as
// stored, in transferColumns order, each written as its length (uvarint)
// and bytes after a domain line. Length prefixes make the encoding
// injective for any bytes, which JSON, replacing invalid UTF-8, is not.
// created and updated are the timestamps' stored text, mtime and hidden
// those nullable columns': nil for NULL, else a string.
func rowDigest(t Transfer, created, updated string, mtime, hidden any) string {
	// One buffer, on the stack for the usual row, and one hash of it: this
	// runs in every transaction that writes a row.
	b := make([]byte, 0, 512)
	version := rowVersion
	mt, hasMTime := mtime.(string)
	hid, hasHidden := hidden.(string)
	switch {
	case t.Route != "" || t.Batch != "":
		version = rowVersionRoute
	case hasMTime || hasHidden:
		version = rowVersionMT
	}
	b = append(b, "airlock transfer row "+version+"\n"...)
	for _, f := range [...]string{t.ID, string(t.Direction), t.Supplier, t.Path} {
		b = appendField(b, f)
	}
	b = appendInt(b, t.Size)
	for _, f := range [...]string{t.SHA256, string(t.State), t.ScanResult, t.Destination, t.Error} {
		b = appendField(b, f)
	}
	b = appendInt(b, int64(t.Attempts))
	for _, f := range [...]string{t.LandingKey, t.Node, t.RemoteIP, created, updated} {
		b = appendField(b, f)
	}
	if version != rowVersion {
		b = appendField(appendField(b, mt), hid)
	}
	if version == rowVersionRoute {
		b = appendField(appendField(b, t.Route), t.Batch)
	}
	sum := sha256.Sum256(b)
	var out [len(rowVersion) + 1 + 2*sha256.Size]byte
	copy(out[:], version+":")
	hex.Encode(out[len(version)+1:], sum[:])
	return string(out[:])
}

func appendField(b []byte, f string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(f))), f...)
}

// appendInt appends n as a field of its decimal digits. (Not as strings
// converted from one buffer in one expression: Go may run every call in an
// expression before its conversions, so each would see the last digits.)
func appendInt(b []byte, n int64) []byte {
	var digits [20]byte
	d := strconv.AppendInt(digits[:0], n, 10)
	return append(binary.AppendUvarint(b, uint64(len(d))), d...)
}

// knownRowDigest reports whether d is a digest this version of airlock
// computes, rather than one of a later encoding.
func knownRowDigest(d string) bool {
	v, _, _ := strings.Cut(d, ":")
	return v == rowVersion || v == rowVersionMT || v == rowVersionRoute
}
