package watch

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"
)

// Notified is an object a bucket notification names.
type Notified struct {
	Bucket string
	Key    string // as sent: AWS and MinIO URL-encode it, versitygw does not
}

// s3Event is the part of an S3 event notification (AWS, MinIO,
// versitygw) that says where something happened.
type s3Event struct {
	Records []s3Record `json:"Records"`
}

type s3Record struct {
	S3 struct {
		Bucket struct {
			Name string `json:"name"`
		} `json:"bucket"`
		Object struct {
			Key string `json:"key"`
		} `json:"object"`
	} `json:"s3"`
}

// ParseS3Event returns the objects an S3 event notification names. A
// notification without records (the s3:TestEvent a store sends when it
// is set up) names none; a record without a key (not about an object) is
// left out.
func ParseS3Event(body []byte) ([]Notified, error) {
	var ev s3Event
	dec := json.NewDecoder(bytes.NewReader(body))
	if err := dec.Decode(&ev); err != nil {
		return nil, fmt.Errorf("not an S3 event notification: %w", err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("not an S3 event notification: data after the JSON object")
	}
	var out []Notified
	for _, r := range ev.Records {
		if r.S3.Object.Key != "" {
			out = append(out, Notified{Bucket: r.S3.Bucket.Name, Key: r.S3.Object.Key})
		}
	}
	return out, nil
}

// scope is what of a bucket a Poller watches, as notifications name it.
type scope struct {
	bucket string // "" when the Lister does not say: any bucket
	prefix string // of keys in the bucket
}

// covers reports whether n may be about an object the scope holds. The
// key is tried as sent and URL-decoded, since senders differ: a wrong
// guess costs a poll, and a poll would find the object anyway.
func (s scope) covers(n Notified) bool {
	if s.bucket != "" && n.Bucket != s.bucket {
		return false
	}
	if strings.HasPrefix(n.Key, s.prefix) {
		return true
	}
	decoded, err := url.QueryUnescape(n.Key)
	return err == nil && strings.HasPrefix(decoded, s.prefix)
}
