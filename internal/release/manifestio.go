package release

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// writeManifest puts the manifest after every file. A run that sent
// nothing leaves a manifest that already lists the same files as it is.
func (r *Releaser) writeManifest(ctx context.Context, m Manifest, nothingSent bool) error {
	key := r.o.Target.Key(ManifestName)
	if r.o.DryRun {
		r.report(Event{Type: EvManifest, Key: key, Files: len(m.Files), DryRun: true, Reason: "dry run: not written"})
		return nil
	}
	if nothingSent {
		old, err := r.read(ctx, key)
		if err != nil {
			return err
		}
		if old != nil && sameFiles(old, m) {
			r.report(Event{Type: EvManifest, Key: key, Files: len(m.Files), Reason: "unchanged: it lists the same files"})
			return nil
		}
	}
	body, err := m.encode()
	if err != nil {
		return err
	}
	sums, err := sumReader(bytes.NewReader(body))
	if err != nil {
		return err
	}
	_, err = r.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket: aws.String(r.o.Target.Bucket), Key: aws.String(key), Body: bytes.NewReader(body),
		ContentType:       aws.String("application/json"),
		Metadata:          map[string]string{"sha256": sums.SHA256},
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc64nvme, ChecksumCRC64NVME: aws.String(sums.CRC64NVME),
	})
	if err != nil {
		err = fmt.Errorf("write manifest %s: %w", key, err)
		r.report(Event{Type: EvError, Key: key, Error: err.Error()})
		return err
	}
	r.report(Event{Type: EvManifest, Key: key, Files: len(m.Files), Size: sums.Size, SHA256: sums.SHA256})
	return nil
}

// read returns the object at key, or nil when there is none.
func (r *Releaser) read(ctx context.Context, key string) ([]byte, error) {
	out, err := r.client.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(r.o.Target.Bucket), Key: aws.String(key)})
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	defer out.Body.Close()
	b, err := io.ReadAll(io.LimitReader(out.Body, 64<<20))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", key, err)
	}
	return b, nil
}
