// Package crypt holds the transforms a route applies to a file on its way
// out: decrypt an envelope-encrypted object, rewrap its data key for the
// recipient, compress, and encrypt to age or OpenPGP recipients. Every
// transform streams: memory stays flat in the file's size (under 20 MiB a
// file measured, most of it zstd's 8 MiB window).
//
// # The envelope
//
// The objects the data-egress pipelines write carry three metadata keys
// (S3 user metadata, so case-insensitive):
//
//	datakeyencryptionkeyid  the id of the key that wrapped the data key (MetaKeyID)
//	ciphertext              the wrapped data key, base64 (MetaWrappedKey)
//	iv                      the body's IV, base64 of 16 bytes (MetaIV)
//
// The body is AES-CTR (AES-256 with the usual 32-byte data keys; 16 and 24
// bytes give AES-128 and AES-192) under the unwrapped data key, counter
// starting at the IV, as the egress services write it. CTR has no
// integrity: a flipped bit in the body is a flipped bit in the plaintext,
// and a wrong key gives garbage, not an error. airlock therefore records
// the sha256 of the source before and of the result after (Pipe), and the
// check that a decrypted object is what its producer meant belongs to the
// producer's own checksum. What airlock does refuse is an object whose
// envelope is partial or malformed (ParseEnvelope), and a data key the key
// service will not unwrap, or unwraps to a length AES has no variant for:
// such an object is never sent on, encrypted or garbled.
//
// Data keys are unwrapped by a KeyService: a gocloud.dev/secrets Keeper
// opened by OpenKeys from a routes file's keys: URL (base64key:// for
// tests and small deployments, awskms:// in production).
//
// # Order
//
// Pipe applies decrypt → compress → encrypt, and hashes (sha256, size) the
// source and the result, for the batch manifest's before and after.
// Rewrap changes only the metadata (Rewrap): the body goes out still
// encrypted, so a route rewraps or decrypts, never both.
package crypt
