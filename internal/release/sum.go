package release

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"hash/crc64"
	"io"
	"os"
)

// crc64NVME is the CRC-64/NVME polynomial, reversed as hash/crc64 wants
// it: S3's full-object checksum.
var crc64NVME = crc64.MakeTable(0x9a6c9329ac4bc9b5)

// Sums are a file's digests: sha256 (hex) as airlock records it, and
// CRC64NVME (base64) as S3 reports it.
type Sums struct {
	Size      int64
	SHA256    string
	CRC64NVME string
}

// sumFile reads a file once for both digests.
func sumFile(path string) (Sums, error) {
	f, err := os.Open(path)
	if err != nil {
		return Sums{}, fmt.Errorf("hash: %w", err)
	}
	defer f.Close()
	return sumReader(f)
}

func sumReader(r io.Reader) (Sums, error) {
	sh, crc := sha256.New(), crc64.New(crc64NVME)
	n, err := io.Copy(io.MultiWriter(sh, crc), r)
	if err != nil {
		return Sums{}, fmt.Errorf("hash: %w", err)
	}
	return Sums{Size: n, SHA256: hex.EncodeToString(sh.Sum(nil)), CRC64NVME: crcBase64(crc)}, nil
}

// crcBase64 is a CRC-64 as S3 headers carry it: big-endian, base64.
func crcBase64(h hash.Hash64) string {
	return base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint64(nil, h.Sum64()))
}
