package nftkit

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Key encodes a concatenated set key as the kernel stores it: each
// component in network byte order, padded with zeros to a multiple of 4
// bytes (ipv4_addr . inet_proto . inet_service: 4 + 4 + 4 bytes).
func Key(parts ...[]byte) []byte {
	n := 0
	for _, p := range parts {
		n += padded(len(p))
	}
	key := make([]byte, 0, n)
	for _, p := range parts {
		key = append(key, p...)
		key = append(key, make([]byte, padded(len(p))-len(p))...)
	}
	return key
}

func padded(n int) int { return (n + 3) &^ 3 }

// Port is an inet_service component (big-endian).
func Port(p uint16) []byte { return binary.BigEndian.AppendUint16(nil, p) }

// ProtoPortKey is the key of inet_proto . inet_service.
func ProtoPortKey(proto byte, port uint16) []byte { return Key([]byte{proto}, Port(port)) }

// AddrProtoPortKey is the key of ipv4_addr . inet_proto . inet_service (or
// ipv6_addr . …); a v4-mapped IPv6 address is keyed as IPv4. is4 says which.
func AddrProtoPortKey(a netip.Addr, proto byte, port uint16) (key []byte, is4 bool) {
	a = a.Unmap()
	return Key(a.AsSlice(), []byte{proto}, Port(port)), a.Is4()
}

// ParseAddrProtoPortKey decodes what AddrProtoPortKey encodes.
func ParseAddrProtoPortKey(key []byte) (a netip.Addr, proto byte, port uint16, err error) {
	var n int
	switch len(key) {
	case 4 + 4 + 4:
		n = 4
	case 16 + 4 + 4:
		n = 16
	default:
		return netip.Addr{}, 0, 0, fmt.Errorf("element key of %d bytes is not address . protocol . port", len(key))
	}
	a, ok := netip.AddrFromSlice(key[:n])
	if !ok {
		return netip.Addr{}, 0, 0, fmt.Errorf("element key address of %d bytes", n)
	}
	return a, key[n], binary.BigEndian.Uint16(key[n+4:]), nil
}
