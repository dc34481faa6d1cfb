package storage

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/user"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
)

// Owner returns who wrote key, as the store knows it: the name of a local
// file's owner (its uid when the system has no name for it), an S3
// object's owner (display name, else canonical id). It is "" when the
// store keeps no owner (mem://, other clouds) or will not say: an S3
// server without ACLs (versitygw answers 501) or a role not allowed to
// read them (403).
func (s *Store) Owner(ctx context.Context, key string) (string, error) {
	if s.local() {
		return s.localOwner(key)
	}
	var client *s3.Client
	if !s.bucket.As(&client) {
		return "", nil
	}
	out, err := client.GetObjectAcl(ctx, &s3.GetObjectAclInput{Bucket: aws.String(s.name), Key: aws.String(s.prefix + key)})
	var status httpStatus
	if errors.As(err, &status) && (status.HTTPStatusCode() == http.StatusNotImplemented || status.HTTPStatusCode() == http.StatusForbidden) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("owner of %s: %w", key, wrapNotFound(err))
	}
	if out.Owner == nil {
		return "", nil
	}
	if name := aws.ToString(out.Owner.DisplayName); name != "" {
		return name, nil
	}
	return aws.ToString(out.Owner.ID), nil
}

func (s *Store) localOwner(key string) (string, error) {
	p, err := localPath(s.open, key)
	if err != nil {
		return "", err
	}
	fi, err := os.Stat(p)
	if err != nil {
		return "", fmt.Errorf("owner of %s: %w", key, wrapNotFound(err))
	}
	uid, ok := fileUID(fi)
	if !ok {
		return "", nil
	}
	if u, err := user.LookupId(uid); err == nil {
		return u.Username, nil
	}
	return uid, nil
}
