package release

import (
	"context"
	"hash/crc64"
	"io"
	"slices"
	"sync"
	"sync/atomic"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/transfermanager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Client is the S3 API a release uses: the transfer manager's, and the
// listing of unfinished multipart uploads that resuming needs.
type Client interface {
	transfermanager.S3APIClient
	ListMultipartUploads(context.Context, *s3.ListMultipartUploadsInput, ...func(*s3.Options)) (*s3.ListMultipartUploadsOutput, error)
	ListParts(context.Context, *s3.ListPartsInput, ...func(*s3.Options)) (*s3.ListPartsOutput, error)
}

// resumingClient lets the transfer manager continue an earlier run's
// multipart upload of the same key, which it cannot do itself: creating
// the upload returns the unfinished one, and a part the server already
// holds with the same size and CRC64NVME as the part about to be sent
// is answered from the listing instead of being sent again. Every other
// part is sent (over the old one, if any), so a file changed since the
// earlier run still ends as its current bytes, which the full-object
// checksum then confirms. An abort is dropped: an interrupted run keeps
// its parts for the next one (a bucket's lifecycle rule for incomplete
// multipart uploads clears those never resumed).
type resumingClient struct {
	Client
	resume  bool
	parts   map[int32]types.Part // the resumed upload's parts, by number
	stale   []string             // other unfinished uploads of the key
	resumed atomic.Int64         // bytes not sent again
	crcs    sync.Map             // part number → its CRC64NVME, for completing
}

func (c *resumingClient) CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	if c.resume {
		id, err := c.unfinished(ctx, in)
		if err != nil {
			return nil, err
		}
		if id != "" {
			return &s3.CreateMultipartUploadOutput{Bucket: in.Bucket, Key: in.Key, UploadId: aws.String(id)}, nil
		}
	}
	return c.Client.CreateMultipartUpload(ctx, in, opts...)
}

// unfinished finds the newest unfinished upload of the key with a
// CRC64NVME full-object checksum, as a release starts them, and lists its
// parts; the others are aborted once this one completes.
func (c *resumingClient) unfinished(ctx context.Context, in *s3.CreateMultipartUploadInput) (string, error) {
	out, err := c.ListMultipartUploads(ctx, &s3.ListMultipartUploadsInput{Bucket: in.Bucket, Prefix: in.Key})
	if err != nil {
		// Resuming saves bytes, nothing more: a role that may not list
		// uploads (s3:ListBucketMultipartUploads) still sends the file whole.
		return "", nil
	}
	var newest *types.MultipartUpload
	for i, u := range out.Uploads {
		if aws.ToString(u.Key) != aws.ToString(in.Key) {
			continue
		}
		c.stale = append(c.stale, aws.ToString(u.UploadId))
		if newest == nil || aws.ToTime(u.Initiated).After(aws.ToTime(newest.Initiated)) {
			newest = &out.Uploads[i]
		}
	}
	if newest == nil {
		return "", nil
	}
	id := aws.ToString(newest.UploadId)
	c.stale = slices.DeleteFunc(c.stale, func(s string) bool { return s == id })
	c.parts = make(map[int32]types.Part)
	in2 := &s3.ListPartsInput{Bucket: in.Bucket, Key: in.Key, UploadId: aws.String(id)}
	for {
		lp, err := c.ListParts(ctx, in2)
		if err != nil {
			c.parts, c.stale = nil, nil
			return "", nil // as above (s3:ListMultipartUploadParts)
		}
		for _, p := range lp.Parts {
			c.parts[aws.ToInt32(p.PartNumber)] = p
		}
		if !aws.ToBool(lp.IsTruncated) || lp.NextPartNumberMarker == nil {
			return id, nil
		}
		in2.PartNumberMarker = lp.NextPartNumberMarker
	}
}

func (c *resumingClient) UploadPart(ctx context.Context, in *s3.UploadPartInput, opts ...func(*s3.Options)) (*s3.UploadPartOutput, error) {
	if p, ok := c.parts[aws.ToInt32(in.PartNumber)]; ok && p.ChecksumCRC64NVME != nil {
		if size, sum, ok := partSum(in.Body); ok && size == aws.ToInt64(p.Size) && sum == *p.ChecksumCRC64NVME {
			c.resumed.Add(size)
			c.crcs.Store(aws.ToInt32(in.PartNumber), p.ChecksumCRC64NVME)
			return &s3.UploadPartOutput{ETag: p.ETag, ChecksumCRC64NVME: p.ChecksumCRC64NVME}, nil
		}
	}
	out, err := c.Client.UploadPart(ctx, in, opts...)
	if err == nil {
		c.crcs.Store(aws.ToInt32(in.PartNumber), out.ChecksumCRC64NVME)
	}
	return out, err
}

// partSum is the size and CRC64NVME of a part's body, which the transfer
// manager holds in memory; the body is rewound for sending.
func partSum(body io.Reader) (int64, string, bool) {
	rs, ok := body.(io.ReadSeeker)
	if !ok {
		return 0, "", false
	}
	h := crc64.New(crc64NVME)
	n, err := io.Copy(h, rs)
	if _, serr := rs.Seek(0, io.SeekStart); err != nil || serr != nil {
		return 0, "", false
	}
	return n, crcBase64(h), true
}

// CompleteMultipartUpload puts back each part's CRC64NVME, which the
// transfer manager (v0.4.3) leaves out of the parts it completes with,
// though a server may require them for a CRC64NVME upload.
func (c *resumingClient) CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, opts ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error) {
	if in.MultipartUpload != nil {
		for i, p := range in.MultipartUpload.Parts {
			if v, ok := c.crcs.Load(aws.ToInt32(p.PartNumber)); ok && p.ChecksumCRC64NVME == nil {
				in.MultipartUpload.Parts[i].ChecksumCRC64NVME = v.(*string)
			}
		}
	}
	out, err := c.Client.CompleteMultipartUpload(ctx, in, opts...)
	if err != nil {
		return nil, err
	}
	for _, id := range c.stale {
		// Best effort: a leftover is only storage, which a lifecycle rule clears.
		_, _ = c.Client.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{Bucket: in.Bucket, Key: in.Key, UploadId: aws.String(id)})
	}
	return out, nil
}

func (c *resumingClient) AbortMultipartUpload(context.Context, *s3.AbortMultipartUploadInput, ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error) {
	return &s3.AbortMultipartUploadOutput{}, nil
}
