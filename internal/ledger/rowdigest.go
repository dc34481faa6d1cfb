package ledger

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"hash"
	"io"
	"strconv"
	"strings"
)

// RowKey is the detail key of the event that creates or changes a transfer
// row: its value is the row's digest as the change left it. The event's hash
// covers its detail, so the chain vouches for every column of the row, and
// audit verify finds a row that no longer matches its latest event.
const RowKey = "row"

// rowVersion names the encoding rowDigest hashes, and prefixes the digest.
// A new encoding gets a new version; verify keeps reading the old ones.
const rowVersion = "v1"

// anchorRow sets ev's RowKey to the digest of t, the row as ev's
// transaction leaves it. ev.Detail must be ev's own map (or nil).
func anchorRow(ev *Event, t Transfer) {
	if ev.Detail == nil {
		ev.Detail = map[string]string{}
	}
	ev.Detail[RowKey] = rowDigest(t, formatTime(t.CreatedAt), formatTime(t.UpdatedAt))
}

// rowDigest is rowVersion + ":" + hex(sha256) of every column of the row as
// stored, in transferColumns order, each written as its length (uvarint)
// and bytes after a domain line. Length prefixes make the encoding
// injective for any bytes, which JSON, replacing invalid UTF-8, is not.
// created and updated are the timestamps' stored text.
func rowDigest(t Transfer, created, updated string) string {
	h := sha256.New()
	io.WriteString(h, "airlock transfer row "+rowVersion+"\n")
	for _, f := range [...]string{
		t.ID, string(t.Direction), t.Supplier, t.Path, strconv.FormatInt(t.Size, 10), t.SHA256,
		string(t.State), t.ScanResult, t.Destination, t.Error, strconv.Itoa(t.Attempts),
		t.LandingKey, t.Node, t.RemoteIP, created, updated,
	} {
		writeField(h, f)
	}
	var sum [sha256.Size]byte
	return rowVersion + ":" + hex.EncodeToString(h.Sum(sum[:0]))
}

func writeField(h hash.Hash, f string) {
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(f)))])
	io.WriteString(h, f)
}

// knownRowDigest reports whether d is a digest this version of airlock
// computes, rather than one of a later encoding.
func knownRowDigest(d string) bool { return strings.HasPrefix(d, rowVersion+":") }
