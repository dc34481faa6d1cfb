package release

import "testing"

func TestDecide(t *testing.T) {
	t.Parallel()
	local := Sums{Size: 10, SHA256: "aa", CRC64NVME: "c1"}
	tests := []struct {
		name   string
		remote *Remote
		want   Action
	}{
		{"nothing there", nil, Send},
		{"complete, with checksum", &Remote{Size: 10, SHA256: "aa", CRC64NVME: "c1"}, Skip},
		{"complete, server keeps no checksum", &Remote{Size: 10, SHA256: "aa"}, Skip},
		{"another size", &Remote{Size: 9, SHA256: "aa", CRC64NVME: "c1"}, Replace},
		{"no metadata (not sent by a release)", &Remote{Size: 10, CRC64NVME: "c1"}, Replace},
		{"another sha256", &Remote{Size: 10, SHA256: "bb", CRC64NVME: "c1"}, Replace},
		{"metadata says so, bytes differ", &Remote{Size: 10, SHA256: "aa", CRC64NVME: "c2"}, Replace},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got, reason := decide(local, tt.remote); got != tt.want {
				t.Errorf("decide = %v (%s), want %v", got, reason, tt.want)
			}
		})
	}
}
