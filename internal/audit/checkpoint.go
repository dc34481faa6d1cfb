package audit

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/airlock-gw/airlock/internal/ledger"
	"github.com/airlock-gw/airlock/internal/storage"
)

// Checkpoint says, signed, that the audit chain's event at Seq had Hash
// when Node looked at At. Checkpoints live outside the database, so that
// one with the database alone cannot rewrite the chain up to a checkpoint,
// nor cut it shorter than the latest, unnoticed.
type Checkpoint struct {
	Version   int       `json:"version"`
	Key       string    `json:"key"` // KeyID of the signing key: the series
	Node      string    `json:"node"`
	Seq       int64     `json:"seq"`
	Hash      string    `json:"hash"`
	At        time.Time `json:"at"`
	Signature []byte    `json:"signature"` // ed25519 over signed()
}

const checkpointVersion = 1

// maxCheckpointSize bounds what is read of one object: a checkpoint is a
// few hundred bytes.
const maxCheckpointSize = 4 << 10

// signed is what the signature covers: a domain line and each field as
// its length (uvarint) and bytes, so that no two checkpoints sign alike.
func (c *Checkpoint) signed() []byte {
	b := []byte("airlock audit checkpoint\n")
	for _, f := range []string{strconv.Itoa(c.Version), c.Key, c.Node, strconv.FormatInt(c.Seq, 10), c.Hash,
		c.At.UTC().Format(time.RFC3339Nano)} {
		b = append(binary.AppendUvarint(b, uint64(len(f))), f...)
	}
	return b
}

// Name is the checkpoint's object name: <key>/<seq, 20 digits>-<node>.json,
// so that names sort by seq within a series and nodes never collide.
func (c *Checkpoint) Name() string {
	return fmt.Sprintf("%s/%020d-%s.json", c.Key, c.Seq, safeNode(c.Node))
}

// safeNode keeps a node name to characters every store takes in a key.
func safeNode(node string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_' {
			return r
		}
		return '_'
	}, node)
}

// Sign returns the checkpoint of the event at seq with hash, signed by key.
func Sign(key ed25519.PrivateKey, node string, seq int64, hash string, at time.Time) Checkpoint {
	c := Checkpoint{Version: checkpointVersion, Key: KeyID(key.Public().(ed25519.PublicKey)), Node: node,
		Seq: seq, Hash: hash, At: at.UTC().Truncate(time.Microsecond)}
	c.Signature = ed25519.Sign(key, c.signed())
	return c
}

// verify checks that c is a checkpoint of pub's series, signed by it.
func (c *Checkpoint) verify(pub ed25519.PublicKey) error {
	switch {
	case c.Version != checkpointVersion:
		return fmt.Errorf("version %d, not %d", c.Version, checkpointVersion)
	case c.Key != KeyID(pub):
		return fmt.Errorf("of series %s, not %s", c.Key, KeyID(pub))
	case !ed25519.Verify(pub, c.signed(), c.Signature):
		return errors.New("bad signature: not signed by the audit key, or altered since")
	}
	return nil
}

// Put writes c to store under c.Name(), unless something is there already:
// a checkpoint is never overwritten (a store with object lock refuses to
// anyway). It reports whether it wrote.
func Put(ctx context.Context, store *storage.Store, c Checkpoint) (bool, error) {
	name := c.Name()
	if _, err := store.Stat(ctx, name); err == nil {
		return false, nil
	} else if !errors.Is(err, storage.ErrNotFound) {
		return false, fmt.Errorf("write checkpoint %s: %w", name, err)
	}
	body, err := json.Marshal(c)
	if err != nil {
		return false, fmt.Errorf("write checkpoint %s: %w", name, err)
	}
	w, err := store.Stage(ctx, name, int64(len(body)))
	if err != nil {
		return false, fmt.Errorf("write checkpoint %s: %w", name, err)
	}
	if _, err := w.Write(body); err != nil {
		w.Abort()
		return false, fmt.Errorf("write checkpoint %s: %w", name, err)
	}
	if err := w.Commit(); err != nil {
		return false, fmt.Errorf("write checkpoint %s: %w", name, err)
	}
	return true, nil
}

// Load reads pub's series of checkpoints from store and checks each: those
// signed by pub come back as anchors for ledger.Verify, the others as
// problems. No checkpoint at all is neither: a series starts empty.
func Load(ctx context.Context, store *storage.Store, pub ed25519.PublicKey) ([]ledger.Anchor, []ledger.Problem, error) {
	entries, err := store.List(ctx, KeyID(pub)+"/")
	if err != nil {
		return nil, nil, fmt.Errorf("load checkpoints: %w", err)
	}
	var anchors []ledger.Anchor
	var problems []ledger.Problem
	for _, e := range entries {
		if e.IsDir {
			continue
		}
		c, err := read(ctx, store, e.Key)
		if err == nil {
			if err = c.verify(pub); err == nil && c.Name() != e.Key {
				err = fmt.Errorf("its contents name it %s", c.Name())
			}
		}
		if err != nil {
			problems = append(problems, ledger.Problem{Anchor: e.Key, Reason: err.Error()})
			continue
		}
		anchors = append(anchors, ledger.Anchor{Seq: c.Seq, Hash: c.Hash, Name: e.Key})
	}
	return anchors, problems, nil
}

func read(ctx context.Context, store *storage.Store, name string) (Checkpoint, error) {
	r, err := store.NewRangeReader(ctx, name, 0, maxCheckpointSize+1)
	if err != nil {
		return Checkpoint{}, err
	}
	defer r.Close()
	body, err := io.ReadAll(r)
	if err != nil {
		return Checkpoint{}, err
	}
	if len(body) > maxCheckpointSize {
		return Checkpoint{}, fmt.Errorf("larger than a checkpoint (%d bytes at most)", maxCheckpointSize)
	}
	var c Checkpoint
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return Checkpoint{}, fmt.Errorf("not a checkpoint: %w", err)
	}
	return c, nil
}
