package rmi

import "encoding/binary"

// A minimal deterministic CBOR (RFC 8949) encoder, just enough for the
// token's shape: unsigned integers, byte and text strings, arrays, maps
// with unsigned keys, and tags. Heads use the shortest form, as the
// deterministic encoding rules require.

const (
	cborUint  = 0
	cborBytes = 2
	cborText  = 3
	cborArray = 4
	cborMap   = 5
	cborTag   = 6
)

func cborHead(b []byte, major byte, n uint64) []byte {
	m := major << 5
	switch {
	case n < 24:
		return append(b, m|byte(n))
	case n <= 0xFF:
		return append(b, m|24, byte(n))
	case n <= 0xFFFF:
		return binary.BigEndian.AppendUint16(append(b, m|25), uint16(n))
	case n <= 0xFFFFFFFF:
		return binary.BigEndian.AppendUint32(append(b, m|26), uint32(n))
	}
	return binary.BigEndian.AppendUint64(append(b, m|27), n)
}

func cborBstr(b, v []byte) []byte { return append(cborHead(b, cborBytes, uint64(len(v))), v...) }
func cborTstr(b []byte, v string) []byte {
	return append(cborHead(b, cborText, uint64(len(v))), v...)
}
