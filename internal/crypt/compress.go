package crypt

import (
	"fmt"
	"io"

	"github.com/klauspost/compress/gzip"
	"github.com/klauspost/compress/zstd"
)

// Compression algorithms, as a route names them.
const (
	CompressNone = "none"
	CompressGzip = "gzip"
	CompressZstd = "zstd"
)

// CheckCompress refuses an algorithm Compress does not know, for a
// config check before any file.
func CheckCompress(alg string) error {
	switch alg {
	case "", CompressNone, CompressGzip, CompressZstd:
		return nil
	}
	return fmt.Errorf("compress: unknown algorithm %q (want gzip, zstd or none)", alg)
}

// Compress returns a writer that compresses into w with alg ("" is
// none). Closing it flushes the compressed stream; it does not close w.
func Compress(w io.Writer, alg string) (io.WriteCloser, error) {
	if err := CheckCompress(alg); err != nil {
		return nil, err
	}
	switch alg {
	case CompressGzip:
		return gzip.NewWriter(w), nil
	case CompressZstd:
		// One encoder goroutine: the pipeline runs many files at once,
		// and a window per core per file would not stay small.
		zw, err := zstd.NewWriter(w, zstd.WithEncoderConcurrency(1))
		if err != nil {
			return nil, fmt.Errorf("compress zstd: %w", err)
		}
		return zw, nil
	default:
		return nopCloser{w}, nil
	}
}

type nopCloser struct{ io.Writer }

func (nopCloser) Close() error { return nil }
