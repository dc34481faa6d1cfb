package storage

import (
	"bytes"
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/airlock-gw/airlock/internal/testpeer"
)

// TestS3SuspendResume suspends and resumes one staged write twice, the
// tail short of a part kept each time, on a real S3 server, and checks
// that the object is whole, that nothing shows under its key before, and
// that no upload or tail is left after.
func TestS3SuspendResume(t *testing.T) {
	v := startVersity(t, "landing")
	landing := openStore(t, testpeer.S3URL(v.Addr, "landing", "in"))
	ctx := t.Context()
	const max = 1 << 30
	data := testData(19 << 20)
	cuts := []int{11 << 20, 18 << 20} // a part and 3 MiB; then a part more and 2 MiB

	st, err := landing.StageResumable(ctx, "acme/x.bin", max)
	if err != nil {
		t.Fatal(err)
	}
	from := 0
	for _, cut := range cuts {
		if _, err := st.Write(data[from:cut]); err != nil {
			t.Fatal(err)
		}
		cp, err := st.Suspend(ctx)
		if err != nil || cp.Size != int64(cut) {
			t.Fatalf("Suspend = %+v, %v; want %d bytes kept", cp, err, cut)
		}
		if _, err := landing.Stat(ctx, "acme/x.bin"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("a suspended write is visible under its key: %v", err)
		}
		if st, err = landing.Resume(ctx, "acme/x.bin", max, cp); err != nil {
			t.Fatal(err)
		}
		from = cut
	}
	if _, err := st.Write(data[from:]); err != nil {
		t.Fatal(err)
	}
	if err := st.Commit(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(readAll(t, landing, "acme/x.bin"), data) {
		t.Fatal("the resumed object holds other bytes than were written")
	}
	assertNothingKept(t, landing)
}

// TestS3DiscardSuspended: discarding a suspended write aborts its upload and
// deletes its tail; a small one, never sent in parts, only has a tail.
func TestS3DiscardSuspended(t *testing.T) {
	v := startVersity(t, "landing")
	landing := openStore(t, testpeer.S3URL(v.Addr, "landing", "in"))
	ctx := t.Context()
	for _, size := range []int{100 << 10, 9 << 20} {
		st, err := landing.StageResumable(ctx, "acme/y.bin", 1<<30)
		if err != nil {
			t.Fatal(err)
		}
		st.Write(testData(size))
		cp, err := st.Suspend(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for range 2 { // a retry finds nothing and is content
			if err := landing.DiscardSuspended(ctx, "acme/y.bin", cp); err != nil {
				t.Fatalf("DiscardSuspended(%d bytes): %v", size, err)
			}
		}
		if _, err := landing.Resume(ctx, "acme/y.bin", 1<<30, cp); err == nil {
			t.Errorf("resumed a discarded write of %d bytes", size)
		}
		assertNothingKept(t, landing)
	}
}

// TestS3StagedAbort: an aborted resumable write leaves no upload.
func TestS3StagedAbort(t *testing.T) {
	v := startVersity(t, "landing")
	landing := openStore(t, testpeer.S3URL(v.Addr, "landing", "in"))
	st, err := landing.StageResumable(t.Context(), "acme/z.bin", 1<<30)
	if err != nil {
		t.Fatal(err)
	}
	st.Write(testData(9 << 20))
	st.Abort()
	if err := st.Commit(); err == nil {
		t.Error("an aborted write committed")
	}
	if _, err := landing.Stat(t.Context(), "acme/z.bin"); !errors.Is(err, ErrNotFound) {
		t.Errorf("an aborted write left an object: %v", err)
	}
	assertNothingKept(t, landing)
}

func assertNothingKept(t *testing.T, st *Store) {
	t.Helper()
	var client *s3.Client
	if !st.bucket.As(&client) {
		t.Fatal("not S3")
	}
	out, err := client.ListMultipartUploads(t.Context(), &s3.ListMultipartUploadsInput{Bucket: aws.String(st.name)})
	if err != nil || len(out.Uploads) != 0 {
		t.Errorf("multipart uploads left: %d, %v", len(out.Uploads), err)
	}
	objs, err := client.ListObjectsV2(t.Context(), &s3.ListObjectsV2Input{Bucket: aws.String(st.name), Prefix: aws.String(st.prefix + KeptDir)})
	if err != nil || len(objs.Contents) != 0 {
		t.Errorf("kept tails left: %d, %v", len(objs.Contents), err)
	}
}
