package nftkit

import (
	"github.com/google/nftables"
	"github.com/google/nftables/expr"
)

// Registers: a concatenated lookup loads its components into consecutive
// 32-bit registers; register 1 (NFT_REG_1) is the first 16 bytes of them,
// so a component after a 4-byte one starts at Reg32(1), after a 16-byte one
// at Reg32(4).

// Reg1 is the register a lookup's key starts in.
const Reg1 uint32 = 1

// Reg32 is the 32-bit register n words after the start of Reg1
// (NFT_REG32_00 + n).
func Reg32(n uint32) uint32 { return 8 + n }

// MatchNFProto matches the packet's family (meta nfproto), which an inet
// table needs before it reads IPv4 or IPv6 header fields.
func MatchNFProto(family byte) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyNFPROTO, Register: Reg1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: Reg1, Data: []byte{family}},
	}
}

// LoadL4ProtoDport loads meta l4proto into protoReg and th dport into
// portReg.
func LoadL4ProtoDport(protoReg, portReg uint32) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: protoReg},
		&expr.Payload{DestRegister: portReg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2},
	}
}

// LoadSAddr4 loads ip saddr into reg.
func LoadSAddr4(reg uint32) *expr.Payload {
	return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4}
}

// LoadSAddr6 loads ip6 saddr into reg.
func LoadSAddr6(reg uint32) *expr.Payload {
	return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: 8, Len: 16}
}

// Lookup matches when the key starting in reg is in s.
func Lookup(s *nftables.Set, reg uint32) *expr.Lookup {
	return &expr.Lookup{SourceRegister: reg, SetName: s.Name, SetID: s.ID}
}
