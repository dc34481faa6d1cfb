package audit

import (
	"net/netip"
	"path"
	"strconv"
	"strings"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger"
)

// ECSVersion is the Elastic Common Schema version the documents follow.
const ECSVersion = "8.11.0"

// ECS is an audit event as an Elastic Common Schema document, for
// Filebeat, Fluent Bit or Vector to ship to Elasticsearch or OpenSearch.
type ECS struct {
	Timestamp string     `json:"@timestamp"`
	ECS       ecsVersion `json:"ecs"`
	Event     ecsEvent   `json:"event"`
	User      *ecsUser   `json:"user,omitempty"`
	Source    *ecsSource `json:"source,omitempty"`
	File      *ecsFile   `json:"file,omitempty"`
	Airlock   ecsAirlock `json:"airlock"`
}

type ecsVersion struct {
	Version string `json:"version"`
}

type ecsEvent struct {
	// ID is the event's chain hash: unique, and stable across exports, so
	// a shipper can make it the document id and drop a repeat.
	ID       string `json:"id"`
	Sequence int64  `json:"sequence"`
	Kind     string `json:"kind"`
	Dataset  string `json:"dataset"`
	Action   string `json:"action"`
	Outcome  string `json:"outcome"`
}

type ecsUser struct {
	Name string `json:"name"`
}

type ecsSource struct {
	IP string `json:"ip"`
}

type ecsFile struct {
	Path string   `json:"path,omitempty"`
	Name string   `json:"name,omitempty"`
	Size *int64   `json:"size,omitempty"`
	Hash *ecsHash `json:"hash,omitempty"`
}

type ecsHash struct {
	SHA256 string `json:"sha256"`
}

type ecsAirlock struct {
	Transfer *ecsTransfer      `json:"transfer,omitempty"`
	ConnID   string            `json:"conn_id,omitempty"`
	Detail   map[string]string `json:"detail,omitempty"`
	PrevHash string            `json:"prev_hash"`
}

type ecsTransfer struct {
	ID        string `json:"id"`
	Direction string `json:"direction,omitempty"`
	Supplier  string `json:"supplier,omitempty"`
	Route     string `json:"route,omitempty"`
	Batch     string `json:"batch,omitempty"`
	State     string `json:"state,omitempty"`
}

// ToECS maps ev to ECS; t, when not nil, is the transfer ev belongs to,
// whose path, size and sha256 (as they are now) fill file.*.
func ToECS(ev ledger.Event, t *ledger.Transfer) ECS {
	d := ECS{
		Timestamp: ev.At.UTC().Format(time.RFC3339Nano),
		ECS:       ecsVersion{ECSVersion},
		Event: ecsEvent{ID: ev.Hash, Sequence: ev.Seq, Kind: "event", Dataset: "airlock.audit",
			Action: ev.Kind, Outcome: Outcome(ev.Kind)},
		Airlock: ecsAirlock{ConnID: ev.ConnID, Detail: ev.Detail, PrevHash: ev.PrevHash},
	}
	if ev.Actor != "" {
		d.User = &ecsUser{Name: ev.Actor}
	}
	if a, err := netip.ParseAddr(ev.RemoteIP); err == nil {
		d.Source = &ecsSource{IP: a.Unmap().String()}
	}
	if ev.TransferID != "" {
		d.Airlock.Transfer = &ecsTransfer{ID: ev.TransferID}
	}
	switch {
	case t != nil:
		d.Airlock.Transfer = &ecsTransfer{ID: t.ID, Direction: string(t.Direction), Supplier: t.Supplier,
			Route: t.Route, Batch: t.Batch, State: string(t.State)}
		f := &ecsFile{Path: t.Path, Name: path.Base(t.Path), Size: &t.Size}
		if t.SHA256 != "" {
			f.Hash = &ecsHash{t.SHA256}
		}
		d.File = f
	case ev.Detail["path"] != "":
		d.File = &ecsFile{Path: ev.Detail["path"], Name: path.Base(ev.Detail["path"])}
		if n, err := strconv.ParseInt(ev.Detail["size"], 10, 64); err == nil {
			d.File.Size = &n
		}
	}
	return d
}

// Outcome is event.outcome for an event kind: failure for what was
// refused or went wrong, success for what was done, unknown otherwise.
func Outcome(kind string) string {
	switch kind { // operators' actions on what went wrong went right
	case "ip.unbanned", "quarantine.release", "quarantine.release_requested", "quarantine.delete":
		return "success"
	}
	for _, w := range []string{"fail", "refused", "reject", "denied", "banned", "quarantine", "tamper", "error",
		"discard", "revoked", "partial", "limit"} {
		if strings.Contains(kind, w) {
			return "failure"
		}
	}
	for _, w := range []string{".ok", "granted", "delivered", "signin", "signout", "finish", "received", "sent",
		"applied", "retry", "reload", "start", "queued", "open", "clean"} {
		if strings.Contains(kind, w) {
			return "success"
		}
	}
	return "unknown"
}
