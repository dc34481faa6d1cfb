package release

import (
	"strings"
	"testing"

	"github.com/airlock-gw/airlock/internal/storage"
)

func TestParseTarget(t *testing.T) {
	t.Parallel()
	tests := []struct {
		raw     string
		want    Target
		wantErr string
	}{
		{raw: "s3://inbox", want: Target{Bucket: "inbox"}},
		{raw: "s3://inbox/team/r1", want: Target{Bucket: "inbox", Prefix: "team/r1/"}},
		{raw: "s3://inbox/team/?region=eu-west-2&endpoint=http://127.0.0.1:9000&use_path_style=true",
			want: Target{Bucket: "inbox", Prefix: "team/", Region: "eu-west-2", Endpoint: "http://127.0.0.1:9000", PathStyle: true}},
		{raw: "s3://inbox/team?prefix=x-&profile=p", want: Target{Bucket: "inbox", Prefix: "team/x-", Profile: "p"}},
		{raw: "s3:///team", wantErr: "no bucket"},
		{raw: "gs://inbox/team", wantErr: "want s3://"},
		{raw: "s3://inbox?use_path_style=maybe", wantErr: "true or false"},
		{raw: "s3://inbox?awssdk=v1", wantErr: `unknown parameter "awssdk"`},
	}
	for _, tt := range tests {
		t.Run(tt.raw, func(t *testing.T) {
			t.Parallel()
			got, err := ParseTarget(tt.raw)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseTarget = %+v, %v; want %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseTarget = %+v, %v; want %+v", got, err, tt.want)
			}
			// The stores read the same bucket and prefix from the same URL.
			ref, ok, err := storage.ParseBucket(tt.raw)
			if err != nil || !ok || ref.Name != got.Bucket || ref.Prefix != got.Prefix {
				t.Errorf("storage reads %+v (%v), release reads %q %q", ref, err, got.Bucket, got.Prefix)
			}
		})
	}
}
