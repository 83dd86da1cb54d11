package nftkit

import (
	"fmt"

	"golang.org/x/net/bpf"
	"golang.org/x/sys/unix"
)

// The notification socket's filter. Every element the gate adds (one per
// approval, 100,000 in a large reconcile) is notified to every listener,
// and WatchDeletions looks only for deletions: without a filter, each
// approval would wake the watching goroutine to read and drop a message.
// The kernel runs this classic BPF program on each notification buffer,
// which holds one or more netlink messages (nf_tables coalesces the
// notifications of one batch): it drops the buffer when every message in
// it is an nf_tables element add (NFT_MSG_NEWSETELEM) or generation
// message (NFT_MSG_NEWGEN), and delivers it otherwise — a deletion in a
// batch of adds, anything it cannot read, or a buffer of more messages
// than it has unrolled steps for.

// filterSteps is how many messages of one buffer the filter reads: each
// step is ~25 instructions, the kernel takes at most 4096.
const filterSteps = 120

const (
	filterAccept = 0xffffffff // deliver the whole buffer
	filterDrop   = 0
	nlmsgHdrLen  = 16
)

// watchFilter assembles the filter. X holds the offset of the message the
// step reads; scratch M[0] keeps it while X serves the arithmetic.
func watchFilter() ([]bpf.RawInstruction, error) {
	prog := []bpf.Instruction{bpf.LoadConstant{Dst: bpf.RegX, Val: 0}}
	for range filterSteps {
		prog = append(prog, filterStep()...)
	}
	prog = append(prog, bpf.RetConstant{Val: filterAccept})
	raw, err := bpf.Assemble(prog)
	if err != nil {
		return nil, fmt.Errorf("assemble the notification filter: %w", err)
	}
	if len(raw) > 4096 {
		return nil, fmt.Errorf("notification filter of %d instructions", len(raw))
	}
	return raw, nil
}

// filterStep reads the message at offset X: at the end of the buffer, every
// message was an add (drop); a message that is not an nf_tables element add
// or generation message, or cannot be read, delivers the buffer; else X
// moves to the next message. The step ends with its own two return
// instructions, which its conditional jumps (8-bit offsets) can reach.
func filterStep() []bpf.Instruction {
	// The step's two returns, by their index in it; a jump from
	// instruction i to t skips t-i-1.
	const accept, drop = 26, 27
	to := func(i, t int) uint8 { return uint8(t - i - 1) }
	return []bpf.Instruction{
		/* 0 */ bpf.LoadExtension{Num: bpf.ExtLen},
		/* 1 */ bpf.JumpIfX{Cond: bpf.JumpLessThan, SkipTrue: to(1, accept)}, // past the end: cannot read it
		/* 2 */ bpf.ALUOpX{Op: bpf.ALUOpSub}, // A = bytes left
		/* 3 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: 0, SkipTrue: to(3, drop)},
		/* 4 */ bpf.JumpIf{Cond: bpf.JumpLessThan, Val: nlmsgHdrLen, SkipTrue: to(4, accept)},
		// nlmsg_type is host-endian (little-endian here): byte 5 is the
		// subsystem, byte 4 the message.
		/* 5 */ bpf.LoadIndirect{Off: 5, Size: 1},
		/* 6 */ bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: unix.NFNL_SUBSYS_NFTABLES, SkipTrue: to(6, accept)},
		/* 7 */ bpf.LoadIndirect{Off: 4, Size: 1},
		/* 8 */ bpf.JumpIf{Cond: bpf.JumpEqual, Val: unix.NFT_MSG_NEWSETELEM, SkipTrue: to(8, 10)},
		/* 9 */ bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: unix.NFT_MSG_NEWGEN, SkipTrue: to(9, accept)},
		// nlmsg_len, little-endian: its two high bytes must be zero (a
		// notification buffer is far smaller than 64 KiB).
		/* 10 */ bpf.LoadIndirect{Off: 2, Size: 2},
		/* 11 */ bpf.JumpIf{Cond: bpf.JumpNotEqual, Val: 0, SkipTrue: to(11, accept)},
		/* 12 */ bpf.StoreScratch{Src: bpf.RegX, N: 0},
		/* 13 */ bpf.LoadIndirect{Off: 1, Size: 1},
		/* 14 */ bpf.ALUOpConstant{Op: bpf.ALUOpShiftLeft, Val: 8},
		/* 15 */ bpf.StoreScratch{Src: bpf.RegA, N: 1},
		/* 16 */ bpf.LoadIndirect{Off: 0, Size: 1},
		/* 17 */ bpf.LoadScratch{Dst: bpf.RegX, N: 1},
		/* 18 */ bpf.ALUOpX{Op: bpf.ALUOpAdd}, // A = nlmsg_len
		/* 19 */ bpf.JumpIf{Cond: bpf.JumpLessThan, Val: nlmsgHdrLen, SkipTrue: to(19, accept)},
		/* 20 */ bpf.ALUOpConstant{Op: bpf.ALUOpAdd, Val: 3}, // NLMSG_ALIGN
		/* 21 */ bpf.ALUOpConstant{Op: bpf.ALUOpAnd, Val: ^uint32(3)},
		/* 22 */ bpf.LoadScratch{Dst: bpf.RegX, N: 0},
		/* 23 */ bpf.ALUOpX{Op: bpf.ALUOpAdd},
		/* 24 */ bpf.TAX{}, // X = the next message's offset
		/* 25 */ bpf.Jump{Skip: 2},
		/* 26 */ bpf.RetConstant{Val: filterAccept},
		/* 27 */ bpf.RetConstant{Val: filterDrop},
	}
}
