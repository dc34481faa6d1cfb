package release

import (
	"bytes"
	"context"
	"errors"
	"hash/crc64"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// partsServer is the part of S3 that resuming talks to, in memory.
type partsServer struct {
	Client  // the rest is never called
	uploads []types.MultipartUpload
	parts   []types.Part
	listErr error // ListMultipartUploads refused

	mu       sync.Mutex
	sent     []int32  // part numbers uploaded
	aborted  []string // upload ids
	created  int
	complete *s3.CompleteMultipartUploadInput
}

func (p *partsServer) ListMultipartUploads(_ context.Context, in *s3.ListMultipartUploadsInput, _ ...func(*s3.Options)) (*s3.ListMultipartUploadsOutput, error) {
	return &s3.ListMultipartUploadsOutput{Uploads: p.uploads}, p.listErr
}

func (p *partsServer) ListParts(_ context.Context, in *s3.ListPartsInput, _ ...func(*s3.Options)) (*s3.ListPartsOutput, error) {
	return &s3.ListPartsOutput{Parts: p.parts}, nil
}

func (p *partsServer) CreateMultipartUpload(context.Context, *s3.CreateMultipartUploadInput, ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	p.created++
	return &s3.CreateMultipartUploadOutput{UploadId: aws.String("new")}, nil
}

func (p *partsServer) UploadPart(_ context.Context, in *s3.UploadPartInput, _ ...func(*s3.Options)) (*s3.UploadPartOutput, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sent = append(p.sent, aws.ToInt32(in.PartNumber))
	return &s3.UploadPartOutput{ETag: aws.String("sent"), ChecksumCRC64NVME: aws.String("crc-sent")}, nil
}

func (p *partsServer) CompleteMultipartUpload(_ context.Context, in *s3.CompleteMultipartUploadInput, _ ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error) {
	p.complete = in
	return &s3.CompleteMultipartUploadOutput{}, nil
}

func (p *partsServer) AbortMultipartUpload(_ context.Context, in *s3.AbortMultipartUploadInput, _ ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error) {
	p.aborted = append(p.aborted, aws.ToString(in.UploadId))
	return &s3.AbortMultipartUploadOutput{}, nil
}

func crcOf(b []byte) string {
	h := crc64.New(crc64NVME)
	h.Write(b)
	return crcBase64(h)
}

func TestResumingClient(t *testing.T) {
	t.Parallel()
	body := [][]byte{bytes.Repeat([]byte{1}, 100), bytes.Repeat([]byte{2}, 100), bytes.Repeat([]byte{3}, 40)}
	part := func(n int32, size int64, crc string) types.Part {
		return types.Part{PartNumber: aws.Int32(n), Size: aws.Int64(size), ETag: aws.String("kept"), ChecksumCRC64NVME: aws.String(crc)}
	}
	upload := func(key, id string, age time.Duration) types.MultipartUpload {
		return types.MultipartUpload{Key: aws.String(key), UploadId: aws.String(id), Initiated: aws.Time(time.Now().Add(-age))}
	}
	tests := []struct {
		name        string
		resume      bool
		uploads     []types.MultipartUpload
		parts       []types.Part
		wantID      string
		wantSent    []int32
		wantResumed int64
		wantAborted []string // once complete
		listErr     error
	}{
		{name: "nothing to resume", resume: true, wantID: "new", wantSent: []int32{1, 2, 3}},
		{name: "listing refused: sent whole", resume: true, listErr: errors.New("AccessDenied"),
			uploads: []types.MultipartUpload{upload("p/a.bin", "old", time.Hour)}, parts: []types.Part{part(1, 100, crcOf(body[0]))},
			wantID: "new", wantSent: []int32{1, 2, 3}},
		{name: "resuming off", resume: false, uploads: []types.MultipartUpload{upload("p/a.bin", "old", time.Hour)},
			parts: []types.Part{part(1, 100, crcOf(body[0]))}, wantID: "new", wantSent: []int32{1, 2, 3}},
		{name: "matching parts kept, the others sent", resume: true,
			uploads: []types.MultipartUpload{upload("p/a.bin", "old", time.Hour)},
			parts:   []types.Part{part(1, 100, crcOf(body[0])), part(2, 100, crcOf(body[0]))},
			wantID:  "old", wantSent: []int32{2, 3}, wantResumed: 100},
		{name: "a part of another size is sent", resume: true,
			uploads: []types.MultipartUpload{upload("p/a.bin", "old", time.Hour)},
			parts:   []types.Part{part(3, 41, crcOf(body[2]))},
			wantID:  "old", wantSent: []int32{1, 2, 3}},
		{name: "the newest upload of the key, the rest aborted once complete", resume: true,
			uploads: []types.MultipartUpload{upload("p/a.bin", "older", 2*time.Hour), upload("p/a.bin", "old", time.Hour), upload("p/a.bin.x", "other-key", 0)},
			parts:   []types.Part{part(1, 100, crcOf(body[0])), part(2, 100, crcOf(body[1])), part(3, 40, crcOf(body[2]))},
			wantID:  "old", wantSent: nil, wantResumed: 240, wantAborted: []string{"older"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			srv := &partsServer{uploads: tt.uploads, parts: tt.parts, listErr: tt.listErr}
			c := &resumingClient{Client: srv, resume: tt.resume}
			ctx := context.Background()
			in := &s3.CreateMultipartUploadInput{Bucket: aws.String("b"), Key: aws.String("p/a.bin")}
			out, err := c.CreateMultipartUpload(ctx, in)
			if err != nil || aws.ToString(out.UploadId) != tt.wantID {
				t.Fatalf("create = %v, %v; want upload %s", out, err, tt.wantID)
			}
			var completed []types.CompletedPart
			for i, b := range body {
				n := int32(i + 1)
				res, err := c.UploadPart(ctx, &s3.UploadPartInput{PartNumber: aws.Int32(n), Body: bytes.NewReader(b)})
				if err != nil {
					t.Fatal(err)
				}
				// As the transfer manager completes: without the CRC64NVME.
				completed = append(completed, types.CompletedPart{PartNumber: aws.Int32(n), ETag: res.ETag})
			}
			if !slices.Equal(srv.sent, tt.wantSent) || c.resumed.Load() != tt.wantResumed {
				t.Errorf("sent parts %v, resumed %d; want %v, %d", srv.sent, c.resumed.Load(), tt.wantSent, tt.wantResumed)
			}
			if _, err := c.AbortMultipartUpload(ctx, &s3.AbortMultipartUploadInput{UploadId: out.UploadId}); err != nil || len(srv.aborted) != 0 {
				t.Errorf("abort reached the server (%v): an interrupted run's parts must stay", err)
			}
			if _, err := c.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: in.Bucket, Key: in.Key, UploadId: out.UploadId,
				MultipartUpload: &types.CompletedMultipartUpload{Parts: completed}}); err != nil {
				t.Fatal(err)
			}
			for _, p := range srv.complete.MultipartUpload.Parts {
				if aws.ToString(p.ChecksumCRC64NVME) == "" {
					t.Errorf("part %d completed without its CRC64NVME", aws.ToInt32(p.PartNumber))
				}
			}
			if !slices.Equal(srv.aborted, tt.wantAborted) {
				t.Errorf("aborted after completing: %v, want %v", srv.aborted, tt.wantAborted)
			}
		})
	}
}
