package storage

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"gocloud.dev/blob"
)

// Walk calls fn with every object whose key starts with prefix, at any
// depth, leaving out the staging and kept areas as List does. Object
// stores list in key order; a local store directory by directory, so
// "a/b" comes before "a-c". An error from fn stops the walk and is
// returned.
func (s *Store) Walk(ctx context.Context, prefix string, fn func(Attributes) error) error {
	if s.local() {
		return s.walkLocal(ctx, prefix, fn)
	}
	it := s.bucket.List(&blob.ListOptions{Prefix: prefix})
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("walk %s: %w", prefix, err)
		}
		if s.staging(obj.Key) {
			continue
		}
		if err := fn(Attributes{Key: obj.Key, Size: obj.Size, ModTime: obj.ModTime.Unix(), ETag: listETag(obj)}); err != nil {
			return err
		}
	}
}

// listETag is the entity tag S3 lists, or the hex MD5 of other stores
// that keep one; "" where there is neither.
func listETag(obj *blob.ListObject) string {
	var o types.Object
	if obj.As(&o) {
		return aws.ToString(o.ETag)
	}
	return hex.EncodeToString(obj.MD5)
}

// walkLocal walks the directory itself rather than through fileblob,
// whose listing walks the whole tree again for each page of 1000 (and
// tries to open a sidecar file for every entry): a poll of 100k files
// would read 100 trees. Only regular files are objects: a symbolic link
// in the store must not make airlock read what it points to.
func (s *Store) walkLocal(ctx context.Context, prefix string, fn func(Attributes) error) error {
	dir := ""
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		dir = prefix[:i]
	}
	root := s.open
	if dir != "" {
		p, err := localPath(s.open, dir)
		if err != nil {
			return fmt.Errorf("walk %s: %w", prefix, err)
		}
		root = p
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == root && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll // nothing there: no objects
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(s.open, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if d.IsDir() {
			return s.walkInto(key, prefix)
		}
		if !d.Type().IsRegular() || !strings.HasPrefix(key, prefix) || s.staging(key) {
			return nil
		}
		fi, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil // deleted since the directory was read
		}
		if err != nil {
			return err
		}
		return fn(Attributes{Key: key, Size: fi.Size(), ModTime: fi.ModTime().Unix()})
	})
	if err != nil {
		return fmt.Errorf("walk %s: %w", prefix, err)
	}
	return nil
}

// walkInto says whether a local walk for prefix enters the directory
// key: not the staging and kept areas, nor a directory no key under
// prefix can be in.
func (s *Store) walkInto(key, prefix string) error {
	if key == "." {
		return nil
	}
	if s.staging(key) {
		return fs.SkipDir
	}
	if k := key + "/"; !strings.HasPrefix(k, prefix) && !strings.HasPrefix(prefix, k) {
		return fs.SkipDir
	}
	return nil
}

// InPlaceWrites reports whether an object may be listed while another
// program is still writing it: a file in a local directory can be. An
// object store lists an object only once its upload is complete (S3
// keeps a multipart upload apart until CompleteMultipartUpload).
func (s *Store) InPlaceWrites() bool { return s.local() }

// Bucket returns the bucket an object store is in and its key prefix
// there ("" for a local directory): what a bucket notification names.
func (s *Store) Bucket() (name, prefix string) { return s.name, s.prefix }
