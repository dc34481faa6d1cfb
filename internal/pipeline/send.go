package pipeline

import (
	"context"
	"crypto/rsa"
	"errors"
	"fmt"
	"io"
	"maps"
	"strings"

	"github.com/airlock-gw/airlock/internal/crypt"
	"github.com/airlock-gw/airlock/internal/storage"
)

// Transform is what a route does to the bytes on their way: decrypt an
// envelope, or rewrap its data key for the recipient; compress; encrypt.
type Transform struct {
	Decrypt     bool
	Rewrap      *rsa.PublicKey // the recipient's key; nil: no rewrap
	RewrapKeyID string         // the id the rewrapped key is sent with
	Compress    string         // gzip, zstd or ""
	Encrypt     crypt.EncryptSpec
	Keys        crypt.KeyService // unwraps data keys (keys.dks)
}

// sizeKept reports whether the output is as long as the input: AES-CTR
// and a rewrap keep it; compression and encryption do not.
func (t *Transform) sizeKept() bool { return t == nil || t.Compress == "" && t.Encrypt.IsZero() }

// passthrough reports whether the bytes go out as they are read (a
// rewrap changes only the key sent with them).
func (t *Transform) passthrough() bool { return !t.Decrypt && t.sizeKept() }

// Receiver takes one file in one request: an https:// destination. An
// error wrapping ErrPermanent cannot be helped by a retry. size is -1
// when the transform makes it known only at the end (compression,
// encryption): the receiver must then take a body of unknown length.
type Receiver interface {
	Put(ctx context.Context, rel string, body io.Reader, size int64, about FileInfo) error
	// String names the receiver for the ledger, without secrets.
	String() string
}

// FileInfo is what a Receiver is told about a file besides its bytes.
type FileInfo struct {
	Transfer, Batch string
	SHA256          string            // of the bytes sent, when known before they are
	Envelope        map[string]string // the rewrapped data key's metadata (crypt.Meta*), if any
}

// sent is what a send wrote: the bytes as they went out.
type sent struct {
	where string
	out   crypt.Sum
}

// send streams the source through the route's transform to its receiver
// or target store. Unlike a plain copy it cannot check the destination
// first (the bytes out differ from the bytes in, and encryption differs
// from run to run): a run after a crash sends again, to the same name
// (a receiver sees the same transfer id). The source must still be the
// bytes checked, or nothing is committed (store) and the transfer fails.
func (eg *egress) send(ctx context.Context) (sent, error) {
	src, err := eg.source(ctx)
	if err != nil {
		return sent{}, err
	}
	attrs, err := src.Stat(ctx, eg.tr.LandingKey)
	if errors.Is(err, storage.ErrNotFound) {
		return sent{}, permanent("%s was removed from the source before it was sent", eg.tr.LandingKey)
	}
	if err != nil {
		return sent{}, fmt.Errorf("send: %w", err)
	}
	t := eg.route.Transform
	if t == nil {
		t = &Transform{}
	}
	meta := attrs.Metadata
	if t.Rewrap != nil {
		if meta, err = crypt.Rewrap(ctx, attrs.Metadata, t.Keys, t.Rewrap, t.RewrapKeyID); err != nil {
			return sent{}, refusal(err)
		}
	}
	r, err := src.NewRangeReader(ctx, eg.tr.LandingKey, 0, -1)
	if err != nil {
		return sent{}, fmt.Errorf("send: %w", err)
	}
	defer r.Close()
	piped, err := crypt.Pipe(ctx, r, crypt.Steps{Decrypt: t.Decrypt, Meta: attrs.Metadata, Keys: t.Keys,
		Compress: t.Compress, Encrypt: t.Encrypt})
	if err != nil {
		return sent{}, refusal(err)
	}
	// Its error is the transform's, which Sums has reported by then.
	defer func() { _ = piped.Close() }()
	if eg.route.Receiver != nil {
		return eg.put(ctx, piped, t, meta)
	}
	return eg.write(ctx, piped, meta, t.Rewrap != nil)
}

// refusal is a transform's error: an object whose envelope is broken is
// never sent, and no retry changes that; anything else (a key service
// out of reach) is retried.
func refusal(err error) error {
	if errors.Is(err, crypt.ErrEnvelope) {
		return permanent("not sent: %v", err)
	}
	return fmt.Errorf("transform: %w", err)
}

// put sends the piped bytes to the route's receiver in one request.
func (eg *egress) put(ctx context.Context, piped *crypt.Piped, t *Transform, meta map[string]string) (sent, error) {
	about := FileInfo{Transfer: eg.tr.ID, Batch: eg.tr.Batch}
	if t.passthrough() {
		about.SHA256 = eg.tr.SHA256
	}
	if t.Rewrap != nil {
		about.Envelope = meta
	}
	rel := eg.dated(eg.route.ReceiverPrefix) + destinationKey(eg.tr)
	size := eg.tr.Size
	if !t.sizeKept() {
		size = -1
	}
	if err := eg.route.Receiver.Put(ctx, rel, piped, size, about); err != nil {
		return sent{}, fmt.Errorf("send: %w", err)
	}
	return eg.checked(piped, eg.route.Receiver.String()+rel)
}

// write stages the piped bytes as the destination object and commits it
// only if the source read was the one checked.
func (eg *egress) write(ctx context.Context, piped *crypt.Piped, meta map[string]string, rewrapped bool) (sent, error) {
	dst, err := eg.stores.Open(ctx, eg.target())
	if err != nil {
		return sent{}, fmt.Errorf("open target: %w", err)
	}
	opts := storageOptions(eg.route)
	if rewrapped {
		opts.Metadata = lowerKeys(meta)
	}
	key := destinationKey(eg.tr)
	st, err := dst.StageWith(ctx, key, eg.tr.Size+eg.tr.Size/8+(1<<20), opts)
	if err != nil {
		return sent{}, fmt.Errorf("send: %w", err)
	}
	if _, err := io.Copy(st, piped); err != nil {
		st.Abort()
		return sent{}, fmt.Errorf("send: %w", err)
	}
	s, err := eg.checked(piped, objectLocation(dst.String(), key))
	if err != nil {
		st.Abort()
		return sent{}, err
	}
	if err := st.Commit(); err != nil {
		return sent{}, fmt.Errorf("send: %w", err)
	}
	return s, nil
}

// storageOptions are the properties of what route writes to its target.
func storageOptions(route Route) storage.WriteOptions {
	return storage.WriteOptions{KMSKey: route.KMSKey}
}

// checked returns what went out, once the source read is known to be the
// bytes checked (and approved) before.
func (eg *egress) checked(piped *crypt.Piped, where string) (sent, error) {
	in, out, err := piped.Sums()
	if err != nil {
		return sent{}, fmt.Errorf("send: %w", err)
	}
	if in.SHA256 != eg.tr.SHA256 || in.Size != eg.tr.Size {
		return sent{}, permanent("%s changed after it was checked: %d bytes with sha256 %s, not %d with %s",
			eg.tr.LandingKey, in.Size, in.SHA256, eg.tr.Size, eg.tr.SHA256)
	}
	return sent{where: where, out: out}, nil
}

// lowerKeys is meta with lowercase keys, as S3 keeps them.
func lowerKeys(meta map[string]string) map[string]string {
	out := make(map[string]string, len(meta))
	for k, v := range maps.All(meta) {
		out[strings.ToLower(k)] = v
	}
	return out
}

// outcomeDetail is the audit detail of a delivery that sent other bytes
// than it read: the manifest's after.
func (s sent) outcomeDetail() map[string]string {
	return map[string]string{"sha256_out": s.out.SHA256, "size_out": fmt.Sprint(s.out.Size)}
}
