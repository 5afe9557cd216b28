package wasmmeta

import (
	"fmt"
	"math"
)

// TableElementsCap bounds the elements a module's tables may grow to, all
// tables together: 8 MiB of references in wazero (8 bytes each). Without a
// declared maximum, `table.grow` is bounded only by 2^32 elements, and
// wazero allocates them outside any memory limit (150M elements took a
// 128 MiB job to 1.2 GB). A table whose declared minimum is larger keeps
// its minimum (Precheck bounds it).
const TableElementsCap = 1 << 20

// TableBytesPerElement is what one table element costs in wazero.
const TableBytesPerElement = 8

// CapTables returns bin with each table's maximum lowered to its share of
// TableElementsCap (never below its minimum), and the elements the tables
// can hold at most after that. bin itself is returned when no table needs
// a change. The result depends only on bin, so compiled code and caches
// keyed by the original bytes stay valid.
func CapTables(bin []byte) ([]byte, uint64, error) {
	if len(bin) < len(magic) {
		return nil, 0, errMalformed
	}
	r := &reader{b: bin, off: 8}
	for r.off < len(r.b) {
		secStart := r.off
		id, err := r.byte()
		if err != nil {
			return nil, 0, err
		}
		size, err := r.u32()
		if err != nil {
			return nil, 0, err
		}
		if int(size) > len(r.b)-r.off {
			return nil, 0, errMalformed
		}
		end := r.off + int(size)
		if id != 4 {
			r.off = end
			continue
		}
		sec := &reader{b: r.b[:end], off: r.off}
		content, total, changed, err := capTableSection(sec)
		if err != nil {
			return nil, 0, err
		}
		if !changed {
			return bin, total, nil
		}
		out := make([]byte, 0, len(bin)+len(content)-int(size)+5)
		out = append(out, bin[:secStart]...)
		out = append(out, 4)
		out = appendULEB(out, uint32(len(content)))
		out = append(out, content...)
		return append(out, bin[end:]...), total, nil
	}
	return bin, 0, nil
}

// capTableSection re-encodes a table section with capped maximums.
func capTableSection(r *reader) (content []byte, total uint64, changed bool, err error) {
	n, err := vec(r, "tables", MaxTables)
	if err != nil {
		return nil, 0, false, err
	}
	share := uint64(TableElementsCap) / uint64(max(n, 1))
	content = appendULEB(nil, n)
	for range n {
		ref, err := r.byte()
		if err != nil {
			return nil, 0, false, err
		}
		if ref != 0x70 && ref != 0x6f { // funcref, externref
			return nil, 0, false, fmt.Errorf("%w: table type 0x%02x", errMalformed, ref)
		}
		flags, err := r.byte()
		if err != nil {
			return nil, 0, false, err
		}
		if flags > 1 {
			return nil, 0, false, fmt.Errorf("%w: table limits flags 0x%02x", errMalformed, flags)
		}
		lo, err := r.u32()
		if err != nil {
			return nil, 0, false, err
		}
		declared := uint64(math.MaxUint32)
		if flags == 1 {
			m, err := r.u32()
			if err != nil {
				return nil, 0, false, err
			}
			declared = uint64(m)
		}
		eff := max(uint64(lo), min(declared, share))
		if flags == 0 || eff != declared {
			changed = true
		}
		total += eff
		content = append(content, ref, 0x01)
		content = appendULEB(content, lo)
		content = appendULEB(content, uint32(eff))
	}
	return content, total, changed, nil
}

func appendULEB(b []byte, v uint32) []byte {
	for {
		c := byte(v & 0x7f)
		v >>= 7
		if v == 0 {
			return append(b, c)
		}
		b = append(b, c|0x80)
	}
}
