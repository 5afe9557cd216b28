package main

import (
	"bytes"
	"encoding/binary"
)

// A generated WASI command of a chosen size, for the large-first step: a
// module as large as real big ones (compilers, interpreters), with real
// code to compile and a data segment to load, that reads a file.
//
// What it contains:
//   - imports: wasi_snapshot_preview1 fd_write, fd_read, path_open and
//     proc_exit;
//   - _start: opens largePath under the first preopen (fd 3), reads it to
//     the end in 64 KiB reads, threads the byte count through every work
//     function in turn and prints "read N bytes, checksum C\n";
//   - work functions of about workBody bytes each (codeBytes in all):
//     straight-line integer arithmetic (multiply, rotate, xor, add),
//     loads from the data segment and small conditional blocks, the
//     instruction mix of compiled C, which wazero's compiler translates
//     instruction by instruction;
//   - one active data segment of dataBytes pseudo-random bytes, copied
//     into linear memory at every instantiation.
//
// seed changes the constants, so that modules of the same size differ (a
// first run must not find another's compiled code).

// largePath is the file the module reads, relative to its first preopen.
const largePath = "share/d2/f42"

// workBody is the approximate size of one work function's body.
const workBody = 32 << 10

// Memory layout of the module.
const (
	lmIovecs   = 0   // 5 iovecs for the output
	lmWritten  = 64  // fd_write's count
	lmOpened   = 72  // path_open's descriptor
	lmReadIov  = 80  // the read iovec
	lmReadN    = 96  // fd_read's count
	lmDigitsA  = 200 // end of the byte count's digits
	lmDigitsB  = 232 // end of the checksum's digits
	lmStrRead  = 256 // "read "
	lmStrBytes = 272 // " bytes, checksum "
	lmStrNL    = 304 // "\n"
	lmStrPath  = 320 // largePath
	lmReadBuf  = 1024
	lmReadLen  = 64 << 10
	lmData     = 128 << 10 // the data segment
)

// Function indices: the imports first.
const (
	fnFdWrite = iota
	fnFdRead
	fnPathOpen
	fnProcExit
	fnStart
	fnUtoa
	fnFirstWork
)

// wasm opcodes used here.
const (
	opBlock   = 0x02
	opLoop    = 0x03
	opIf      = 0x04
	opEnd     = 0x0b
	opBr      = 0x0c
	opBrIf    = 0x0d
	opCall    = 0x10
	opDrop    = 0x1a
	opGet     = 0x20
	opSet     = 0x21
	opTee     = 0x22
	opLoad    = 0x28
	opStore   = 0x36
	opStore8  = 0x3a
	opI32     = 0x41
	opI64     = 0x42
	opEqz     = 0x45
	opAdd     = 0x6a
	opSub     = 0x6b
	opMul     = 0x6c
	opDivU    = 0x6e
	opRemU    = 0x70
	opAnd     = 0x71
	opXor     = 0x73
	opRotl    = 0x77
	blockVoid = 0x40
	tI32      = 0x7f
	tI64      = 0x7e
)

// wbuf is a wasm byte writer.
type wbuf struct{ bytes.Buffer }

func (w *wbuf) u32(v uint32) { w.Write(binary.AppendUvarint(nil, uint64(v))) }

func (w *wbuf) s64(v int64) {
	for {
		b := byte(v & 0x7f)
		v >>= 7
		if (v == 0 && b&0x40 == 0) || (v == -1 && b&0x40 != 0) {
			w.WriteByte(b)
			return
		}
		w.WriteByte(b | 0x80)
	}
}

func (w *wbuf) op(ops ...byte) { w.Write(ops) }

func (w *wbuf) i32(v int32) { w.op(opI32); w.s64(int64(v)) }

func (w *wbuf) name(s string) { w.u32(uint32(len(s))); w.WriteString(s) } //nolint:gosec // short names

// store writes v (pushed by push) at addr.
func (w *wbuf) store(addr int32, push func()) {
	w.i32(addr)
	push()
	w.op(opStore, 2, 0)
}

func (w *wbuf) section(id byte, body *wbuf) {
	w.WriteByte(id)
	w.u32(uint32(body.Len())) //nolint:gosec // sections are far below 4 GiB
	w.Write(body.Bytes())
}

// generateLargeModule returns a module with about codeBytes of work
// functions and dataBytes of data (see above).
func generateLargeModule(codeBytes, dataBytes int, seed uint32) []byte {
	rng := seed*2654435761 + 1
	next := func() uint32 {
		rng ^= rng << 13
		rng ^= rng >> 17
		rng ^= rng << 5
		return rng
	}
	works := max(codeBytes/workBody, 1)

	var m wbuf
	m.Write([]byte{0, 'a', 's', 'm', 1, 0, 0, 0})

	var types wbuf
	sig := func(params []byte, results ...byte) {
		types.op(0x60)
		types.u32(uint32(len(params))) //nolint:gosec // small
		types.Write(params)
		types.u32(uint32(len(results))) //nolint:gosec // small
		types.Write(results)
	}
	types.u32(6)
	sig([]byte{tI32, tI32, tI32, tI32}, tI32)                               // 0: fd_write, fd_read
	sig([]byte{tI32, tI32, tI32, tI32, tI32, tI64, tI64, tI32, tI32}, tI32) // 1: path_open
	sig([]byte{tI32})                                                       // 2: proc_exit
	sig(nil)                                                                // 3: _start
	sig([]byte{tI32, tI32}, tI32)                                           // 4: utoa
	sig([]byte{tI32}, tI32)                                                 // 5: work
	m.section(1, &types)

	var imports wbuf
	imports.u32(4)
	for _, im := range []struct {
		name string
		typ  uint32
	}{{"fd_write", 0}, {"fd_read", 0}, {"path_open", 1}, {"proc_exit", 2}} {
		imports.name("wasi_snapshot_preview1")
		imports.name(im.name)
		imports.op(0x00)
		imports.u32(im.typ)
	}
	m.section(2, &imports)

	var funcs wbuf
	funcs.u32(uint32(2 + works)) //nolint:gosec // bounded by the module size
	funcs.u32(3)
	funcs.u32(4)
	for range works {
		funcs.u32(5)
	}
	m.section(3, &funcs)

	var mem wbuf
	mem.u32(1)
	mem.op(0x00)
	mem.u32(uint32((lmData+dataBytes)/65536 + 1)) //nolint:gosec // bounded by the module size
	m.section(5, &mem)

	var exports wbuf
	exports.u32(2)
	exports.name("_start")
	exports.op(0x00)
	exports.u32(fnStart)
	exports.name("memory")
	exports.op(0x02)
	exports.u32(0)
	m.section(7, &exports)

	var code wbuf
	code.u32(uint32(2 + works)) //nolint:gosec // bounded by the module size
	body := func(locals int, fill func(*wbuf)) {
		var b wbuf
		if locals > 0 {
			b.u32(1)
			b.u32(uint32(locals)) //nolint:gosec // small
			b.op(tI32)
		} else {
			b.u32(0)
		}
		fill(&b)
		b.op(opEnd)
		code.u32(uint32(b.Len())) //nolint:gosec // a function body
		code.Write(b.Bytes())
	}
	// _start: locals fd 0, total 1, acc 2, n 3.
	body(4, func(b *wbuf) {
		b.i32(3)
		b.i32(1) // follow symlinks
		b.i32(lmStrPath)
		b.i32(int32(len(largePath)))
		b.i32(0)
		b.op(opI64)
		b.s64(2) // fd_read
		b.op(opI64)
		b.s64(0)
		b.i32(0)
		b.i32(lmOpened)
		b.op(opCall, fnPathOpen)
		b.op(opIf, blockVoid)
		b.i32(1)
		b.op(opCall, fnProcExit)
		b.op(opEnd)
		b.i32(lmOpened)
		b.op(opLoad, 2, 0, opSet, 0)
		b.store(lmReadIov, func() { b.i32(lmReadBuf) })
		b.store(lmReadIov+4, func() { b.i32(lmReadLen) })
		b.op(opBlock, blockVoid, opLoop, blockVoid)
		b.op(opGet, 0)
		b.i32(lmReadIov)
		b.i32(1)
		b.i32(lmReadN)
		b.op(opCall, fnFdRead)
		b.op(opIf, blockVoid)
		b.i32(2)
		b.op(opCall, fnProcExit)
		b.op(opEnd)
		b.i32(lmReadN)
		b.op(opLoad, 2, 0, opTee, 3, opEqz, opBrIf, 1)
		b.op(opGet, 1, opGet, 3, opAdd, opSet, 1)
		b.op(opBr, 0, opEnd, opEnd)
		b.op(opGet, 1, opSet, 2)
		for i := range works {
			b.op(opGet, 2, opCall)
			b.u32(uint32(fnFirstWork + i)) //nolint:gosec // bounded by the module size
			b.op(opSet, 2)
		}
		b.store(lmIovecs, func() { b.i32(lmStrRead) })
		b.store(lmIovecs+4, func() { b.i32(5) })
		b.op(opGet, 1)
		b.i32(lmDigitsA)
		b.op(opCall, fnUtoa, opSet, 3)
		b.store(lmIovecs+8, func() { b.op(opGet, 3) })
		b.store(lmIovecs+12, func() { b.i32(lmDigitsA); b.op(opGet, 3, opSub) })
		b.store(lmIovecs+16, func() { b.i32(lmStrBytes) })
		b.store(lmIovecs+20, func() { b.i32(17) })
		b.op(opGet, 2)
		b.i32(lmDigitsB)
		b.op(opCall, fnUtoa, opSet, 3)
		b.store(lmIovecs+24, func() { b.op(opGet, 3) })
		b.store(lmIovecs+28, func() { b.i32(lmDigitsB); b.op(opGet, 3, opSub) })
		b.store(lmIovecs+32, func() { b.i32(lmStrNL) })
		b.store(lmIovecs+36, func() { b.i32(1) })
		b.i32(1)
		b.i32(lmIovecs)
		b.i32(5)
		b.i32(lmWritten)
		b.op(opCall, fnFdWrite, opDrop)
	})
	// utoa(v, end) -> start: the decimal digits of v, ending at end.
	body(0, func(b *wbuf) {
		b.op(opLoop, blockVoid)
		b.op(opGet, 1)
		b.i32(1)
		b.op(opSub, opTee, 1, opGet, 0)
		b.i32(10)
		b.op(opRemU)
		b.i32(48)
		b.op(opAdd, opStore8, 0, 0)
		b.op(opGet, 0)
		b.i32(10)
		b.op(opDivU, opTee, 0, opBrIf, 0, opEnd)
		b.op(opGet, 1)
	})
	// The work functions: x -> a mix of x and the data. Locals: x 0, a 1, b 2.
	span := uint32(max(dataBytes-4, 4))
	base := int32(lmData)
	if dataBytes < 8 {
		base = lmReadBuf
	}
	for range works {
		body(2, func(b *wbuf) {
			b.op(opGet, 0, opSet, 1)
			b.i32(int32(next())) //nolint:gosec // any constant
			b.op(opSet, 2)
			for b.Len() < workBody {
				b.op(opGet, 1)
				b.i32(int32(next() | 1)) //nolint:gosec // any constant
				b.op(opMul)
				b.i32(int32(next() % 31))
				b.op(opRotl, opGet, 2, opXor, opSet, 2)
				b.op(opGet, 1)
				b.i32(base + int32((next()%span)&^3)) //nolint:gosec // within the data
				b.op(opLoad, 2, 0, opAdd, opGet, 2, opXor, opSet, 1)
				b.op(opGet, 2)
				b.i32(1 << (next() % 8))
				b.op(opAnd, opIf, blockVoid, opGet, 1)
				b.i32(int32(next())) //nolint:gosec // any constant
				b.op(opAdd, opSet, 1, opEnd)
			}
			b.op(opGet, 1, opGet, 2, opXor)
		})
	}
	m.section(10, &code)

	var data wbuf
	strs := []struct {
		at int32
		s  string
	}{{lmStrRead, "read "}, {lmStrBytes, " bytes, checksum "}, {lmStrNL, "\n"}, {lmStrPath, largePath}}
	count := len(strs)
	if dataBytes > 0 {
		count++
	}
	data.u32(uint32(count)) //nolint:gosec // small
	segment := func(at int32, content []byte) {
		data.u32(0)
		data.i32(at)
		data.op(opEnd)
		data.u32(uint32(len(content))) //nolint:gosec // bounded by the module size
		data.Write(content)
	}
	for _, s := range strs {
		segment(s.at, []byte(s.s))
	}
	if dataBytes > 0 {
		content := make([]byte, dataBytes)
		for i := 0; i+4 <= len(content); i += 4 {
			binary.LittleEndian.PutUint32(content[i:], next())
		}
		segment(lmData, content)
	}
	m.section(11, &data)
	return m.Bytes()
}
