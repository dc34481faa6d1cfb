package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"gocloud.dev/secrets"

	"github.com/airlock-gw/airlock/internal/config"
	"github.com/airlock-gw/airlock/internal/crypt"
	"github.com/airlock-gw/airlock/internal/pipeline"
	"github.com/airlock-gw/airlock/internal/sink/https"
)

// sending is how a route's files go out beyond a plain store copy: its
// transform and its https receiver, if any.
type sending struct {
	transform      *pipeline.Transform
	receiver       pipeline.Receiver
	receiverPrefix string
}

// openSending makes r's transform and receiver, opening keys.dks once
// (into keepers) for the routes that unwrap data keys.
func openSending(ctx context.Context, r *config.Route, keys map[string]string, keepers map[string]*secrets.Keeper) (sending, error) {
	var s sending
	if r.Decrypt || r.Rewrap != "" || r.Compress != "" || r.Encrypt.PGP != "" || len(r.Encrypt.Age) > 0 {
		t, err := openTransform(ctx, r, keys, keepers)
		if err != nil {
			return sending{}, err
		}
		s.transform = t
	}
	if r.HTTPS() {
		base, prefix := r.Deliver()
		sink, err := https.New(base, https.TLSFiles{Cert: r.TLS.Cert, Key: r.TLS.Key, CA: r.TLS.CA}, https.Options{})
		if err != nil {
			return sending{}, fmt.Errorf("%s: route %s: %w", r.File, r.Name, err)
		}
		s.receiver, s.receiverPrefix = httpsReceiver{sink, base}, prefix
	}
	return s, nil
}

func openTransform(ctx context.Context, r *config.Route, keys map[string]string, keepers map[string]*secrets.Keeper) (*pipeline.Transform, error) {
	t := &pipeline.Transform{Decrypt: r.Decrypt, Compress: r.Compress, Encrypt: crypt.EncryptSpec{Age: r.Encrypt.Age}}
	if r.Encrypt.PGP != "" {
		var err error
		if t.Encrypt.PGP, err = os.ReadFile(r.Encrypt.PGP); err != nil {
			return nil, fmt.Errorf("%s: route %s: encrypt.pgp: %w", r.File, r.Name, err)
		}
	}
	if r.Rewrap != "" {
		pem, err := os.ReadFile(r.Rewrap)
		if err == nil {
			t.Rewrap, err = crypt.LoadRSAPublicKey(pem)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: route %s: rewrap: %w", r.File, r.Name, err)
		}
		t.RewrapKeyID = crypt.Fingerprint(t.Rewrap)
	}
	if r.Decrypt || r.Rewrap != "" {
		k, ok := keepers[config.DataKeyService]
		if !ok {
			var err error
			if k, err = crypt.OpenKeys(ctx, keys[config.DataKeyService]); err != nil {
				return nil, fmt.Errorf("keys.%s: %w", config.DataKeyService, err)
			}
			keepers[config.DataKeyService] = k
		}
		t.Keys = k
	}
	return t, nil
}

// httpsReceiver is an https sink as the pipeline's Receiver: the file's
// facts go out as the sink's headers, its refusals as permanent errors.
type httpsReceiver struct {
	sink *https.Sink
	base string
}

func (h httpsReceiver) Put(ctx context.Context, rel string, body io.Reader, size int64, about pipeline.FileInfo) error {
	headers := map[string]string{https.HeaderTransfer: about.Transfer}
	for name, v := range map[string]string{
		https.HeaderBatch: about.Batch, https.HeaderSHA256: about.SHA256,
		https.HeaderDatakeyCiphertext: about.Envelope[crypt.MetaWrappedKey],
		https.HeaderDatakeyKeyID:      about.Envelope[crypt.MetaKeyID],
		https.HeaderDatakeyIV:         about.Envelope[crypt.MetaIV],
	} {
		if v != "" {
			headers[name] = v
		}
	}
	if size < 0 {
		size = https.Unsized // the sha256 follows the body as a trailer
	}
	err := h.sink.Put(ctx, rel, body, size, headers)
	if errors.Is(err, https.ErrPermanent) {
		return fmt.Errorf("%w: %w", pipeline.ErrPermanent, err)
	}
	return err
}

func (h httpsReceiver) String() string { return strings.TrimSuffix(h.base, "/") + "/" }
