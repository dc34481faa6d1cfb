package sftpd

import (
	"encoding/binary"
	"fmt"
)

// sftpPacket builds a length-prefixed SFTP packet: type, request id (or the
// version, for INIT), then fields: a string is an SSH string, uint32 and
// uint64 are big-endian integers, []byte is copied as is.
func sftpPacket(typ byte, id uint32, fields ...any) []byte {
	b := []byte{0, 0, 0, 0, typ}
	b = binary.BigEndian.AppendUint32(b, id)
	for _, f := range fields {
		switch v := f.(type) {
		case string:
			b = binary.BigEndian.AppendUint32(b, uint32(len(v)))
			b = append(b, v...)
		case uint32:
			b = binary.BigEndian.AppendUint32(b, v)
		case uint64:
			b = binary.BigEndian.AppendUint64(b, v)
		case []byte:
			b = append(b, v...)
		default:
			panic(fmt.Sprintf("sftpPacket: field of type %T", f))
		}
	}
	binary.BigEndian.PutUint32(b, uint32(len(b)-4))
	return b
}
