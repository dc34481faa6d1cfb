package release

import (
	"encoding/base64"
	"encoding/binary"
	"strings"
	"testing"
)

func TestSums(t *testing.T) {
	t.Parallel()
	s, err := sumReader(strings.NewReader("123456789"))
	if err != nil {
		t.Fatal(err)
	}
	// CRC-64/NVME's check value, from its catalogue entry.
	crc, _ := base64.StdEncoding.DecodeString(s.CRC64NVME)
	if got := binary.BigEndian.Uint64(crc); got != 0xae8b14860a799888 {
		t.Errorf("CRC64NVME(123456789) = %#x, want 0xae8b14860a799888", got)
	}
	if s.SHA256 != "15e2b0d3c33891ebb0f1ef609ec419420c20e320ce94c65fbc8c3312448eb225" || s.Size != 9 {
		t.Errorf("sums = %+v", s)
	}
}
