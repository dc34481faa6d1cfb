package storage

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"gocloud.dev/blob"
)

// BucketRef is where a location in an object store keeps its objects.
type BucketRef struct {
	Scheme string // "s3", "gs" or "azblob"
	Name   string // the bucket
	Prefix string // the key prefix in it: "" or ending in "/" (unless prefix= says otherwise)
}

// ParseBucket returns the bucket and key prefix of location, read as Open
// reads it; ok is false for a directory, a file:// or a mem:// URL.
func ParseBucket(location string) (ref BucketRef, ok bool, err error) {
	t, err := parseLocation(location)
	if err != nil || t.name == "" {
		return BucketRef{}, false, err
	}
	return BucketRef{Scheme: t.scheme, Name: t.name, Prefix: t.prefix}, true, nil
}

// PutBucketPolicy sets the policy of the bucket of an s3:// location,
// replacing the one it had. The client is the one Open would use: the
// endpoint and region from the URL, credentials from the AWS environment.
func PutBucketPolicy(ctx context.Context, location string, policy []byte) error {
	t, err := parseLocation(location)
	switch {
	case err != nil:
		return fmt.Errorf("put bucket policy: %w", err)
	case t.scheme != "s3":
		return fmt.Errorf("put bucket policy: %s is not an s3:// bucket", t.shown)
	}
	b, err := blob.OpenBucket(ctx, t.open)
	if err != nil {
		return fmt.Errorf("put bucket policy on %s: %w", t.shown, err)
	}
	// Closing releases the client; the request has had its answer.
	defer func() { _ = b.Close() }()
	var client *s3.Client
	if !b.As(&client) {
		return errors.New("put bucket policy: the s3 driver exposes no client")
	}
	if _, err := client.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(t.name), Policy: aws.String(string(policy))}); err != nil {
		return fmt.Errorf("put bucket policy on %s: %w", t.name, err)
	}
	return nil
}
