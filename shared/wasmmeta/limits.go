package wasmmeta

import (
	"fmt"
)

// Limits on the counts in a module binary that size an allocation when
// wazero decodes, validates or compiles it. Most are the implementation
// limits every browser enforces (the WebAssembly JS API, "Limits"), so any
// module a real toolchain produces for the web is within them; the others
// (total locals, br_table width, nesting depth) are explained with their
// constants. Precheck enforces them before wazero sees the bytes.
const (
	MaxTypes          = 1_000_000
	MaxFunctions      = 1_000_000 // imported and defined
	MaxImports        = 100_000
	MaxExports        = 100_000
	MaxGlobals        = 1_000_000
	MaxDataSegments   = 100_000
	MaxTables         = 100_000
	MaxElemSegments   = 10_000_000
	MaxTableElements  = 10_000_000 // a table's declared minimum
	MaxParams         = 1_000
	MaxResults        = 1_000
	MaxFunctionBody   = 7_654_321 // bytes
	MaxFunctionLocals = 50_000
	// MaxBrTableTargets is V8's limit on one br_table's width.
	MaxBrTableTargets = 65_520
	// MaxNestingDepth bounds nested blocks in one function. Compilers nest
	// a block per switch case (clang) or per resume point (Go); the deepest
	// fixture needs a few hundred. wazero's optimizing compiler takes time
	// quadratic in the depth (50,000 took 13 s).
	MaxNestingDepth = 10_000
	// Every declared local costs the compilers hundreds of bytes however
	// few bytes declare it, so the module's locals together are bounded by
	// its size: MaxTotalLocalsBase plus one local per LocalsPerByte bytes.
	// (A 6.4 MB Go program declares 16,010 locals in all, 1 per 400 bytes.)
	MaxTotalLocalsBase = 20_000
	LocalsPerByte      = 4
)

// Precheck walks the module's sections and every function body without
// allocating in proportion to any count it reads, and refuses a module
// whose counts exceed the limits above or claim more entries than the bytes
// that hold them. wazero allocates the claimed sizes up front (a vector's
// length, a function's locals, a br_table's targets), so without this a
// 30-byte module asks for tens of gigabytes. It does not validate the module
// (wazero does, after it); it only bounds it.
func Precheck(bin []byte) error {
	_, err := precheck(bin)
	return err
}

func precheck(bin []byte) (*prechecker, error) {
	if len(bin) < len(magic) {
		return nil, fmt.Errorf("%w: shorter than its header", errMalformed)
	}
	p := &prechecker{size: len(bin)}
	if err := sections(bin, p.section); err != nil {
		return nil, err
	}
	return p, nil
}

// sections calls fn with each section of a module binary (after its magic
// and version) and a reader bounded to that section's bytes, in order. A
// section that claims more bytes than remain is malformed.
func sections(bin []byte, fn func(id byte, sec *reader) error) error {
	r := &reader{b: bin, off: 8}
	for r.off < len(r.b) {
		id, err := r.byte()
		if err != nil {
			return err
		}
		size, err := r.u32()
		if err != nil {
			return err
		}
		if int(size) > len(r.b)-r.off {
			return fmt.Errorf("%w: section %d claims %d bytes, %d remain", errMalformed, id, size, len(r.b)-r.off)
		}
		end := r.off + int(size)
		if err := fn(id, &reader{b: r.b[:end], off: r.off}); err != nil {
			return err
		}
		r.off = end
	}
	return nil
}

type prechecker struct {
	size          int
	importedFuncs uint64
	totalLocals   uint64
	// the largest counts seen, for tests
	maxDepth, maxLocals, maxBrTable int
}

// vec reads a vector's length and checks it against max and against the
// bytes left (every entry takes at least one byte).
func vec(r *reader, what string, max uint64) (uint32, error) {
	n, err := r.u32()
	if err != nil {
		return 0, err
	}
	if uint64(n) > max {
		return 0, fmt.Errorf("%d %s, more than the limit of %d", n, what, max)
	}
	if int64(n) > int64(len(r.b)-r.off) {
		return 0, fmt.Errorf("%w: %d %s claimed in %d bytes", errMalformed, n, what, len(r.b)-r.off)
	}
	return n, nil
}

// entries reads a vector's length, checked as vec does, and calls entry
// once for each of its entries, stopping at the first error.
func entries(r *reader, what string, max uint64, entry func() error) error {
	n, err := vec(r, what, max)
	if err != nil {
		return err
	}
	for range n {
		if err := entry(); err != nil {
			return err
		}
	}
	return nil
}

func (p *prechecker) section(id byte, r *reader) error {
	switch id {
	case 0:
		return customSection(r)
	case 1:
		return typeSection(r)
	case 2:
		return p.importSection(r)
	case 3:
		_, err := vec(r, "functions", MaxFunctions-p.importedFuncs)
		return err
	case 4:
		return entries(r, "tables", MaxTables, func() error {
			if _, err := r.byte(); err != nil {
				return err
			}
			return tableLimits(r)
		})
	case 5:
		_, err := vec(r, "memories", 1)
		return err
	case 6:
		_, err := vec(r, "globals", MaxGlobals)
		return err
	case 7:
		// Each export's name is read by wazero into a buffer of the
		// length it declares: bound it by the bytes left in the section.
		return entries(r, "exports", MaxExports, func() error {
			if _, err := r.name(); err != nil {
				return err
			}
			if _, err := r.byte(); err != nil {
				return err
			}
			_, err := r.u32()
			return err
		})
	case 9:
		return elementSection(r)
	case 10:
		return p.codeSection(r)
	case 11:
		return dataSection(r)
	case 12:
		n, err := r.u32()
		if err != nil {
			return err
		}
		if n > MaxDataSegments {
			return fmt.Errorf("data count %d, more than the limit of %d", n, MaxDataSegments)
		}
	}
	return nil
}

func tableLimits(r *reader) error {
	flags, err := r.byte()
	if err != nil {
		return err
	}
	min, err := r.u32()
	if err != nil {
		return err
	}
	if min > MaxTableElements {
		return fmt.Errorf("a table of %d elements, more than the limit of %d", min, MaxTableElements)
	}
	if flags&1 != 0 {
		_, err = r.u32()
	}
	return err
}

func typeSection(r *reader) error {
	return entries(r, "types", MaxTypes, func() error {
		form, err := r.byte()
		if err != nil {
			return err
		}
		if form != 0x60 {
			return fmt.Errorf("%w: type form 0x%02x", errMalformed, form)
		}
		for _, w := range []struct {
			what string
			max  uint64
		}{{"parameters", MaxParams}, {"results", MaxResults}} {
			k, err := vec(r, w.what, w.max)
			if err != nil {
				return err
			}
			r.off += int(k) // checked against the bytes left by vec
		}
		return nil
	})
}

func (p *prechecker) importSection(r *reader) error {
	return entries(r, "imports", MaxImports, func() error {
		if _, err := r.name(); err != nil {
			return err
		}
		if _, err := r.name(); err != nil {
			return err
		}
		kind, err := r.byte()
		if err != nil {
			return err
		}
		switch kind {
		case 0x00:
			p.importedFuncs++
			_, err = r.u32()
		case 0x01:
			if _, err = r.byte(); err == nil {
				err = tableLimits(r)
			}
		case 0x02:
			err = r.limits()
		case 0x03:
			if _, err = r.byte(); err == nil {
				_, err = r.byte()
			}
		default:
			return fmt.Errorf("%w: import kind 0x%02x", errMalformed, kind)
		}
		return err
	})
}

func elementSection(r *reader) error {
	return entries(r, "element segments", MaxElemSegments, func() error {
		flags, err := r.u32()
		if err != nil {
			return err
		}
		if flags > 7 {
			return fmt.Errorf("%w: element segment flags %d", errMalformed, flags)
		}
		if flags&2 != 0 && flags&1 == 0 { // explicit table index
			if _, err := r.u32(); err != nil {
				return err
			}
		}
		if flags&1 == 0 { // active: an offset expression
			if err := constExpr(r); err != nil {
				return err
			}
		}
		if flags&3 != 0 { // element kind or reference type
			if _, err := r.byte(); err != nil {
				return err
			}
		}
		return entries(r, "elements in a segment", MaxTableElements, func() error {
			if flags&4 != 0 {
				return constExpr(r)
			}
			_, err := r.u32()
			return err
		})
	})
}

func dataSection(r *reader) error {
	return entries(r, "data segments", MaxDataSegments, func() error {
		flags, err := r.u32()
		if err != nil {
			return err
		}
		switch flags {
		case 0:
			err = constExpr(r)
		case 1:
		case 2:
			if _, err = r.u32(); err == nil {
				err = constExpr(r)
			}
		default:
			return fmt.Errorf("%w: data segment flags %d", errMalformed, flags)
		}
		if err != nil {
			return err
		}
		k, err := r.u32()
		if err != nil {
			return err
		}
		if int64(k) > int64(len(r.b)-r.off) {
			return fmt.Errorf("%w: a data segment of %d bytes claimed in %d", errMalformed, k, len(r.b)-r.off)
		}
		r.off += int(k)
		return nil
	})
}

// constExpr skips a constant expression (instructions up to its end).
func constExpr(r *reader) error {
	return instructions(r, &prechecker{})
}

func (p *prechecker) codeSection(r *reader) error {
	n, err := vec(r, "function bodies", MaxFunctions)
	if err != nil {
		return err
	}
	maxTotal := uint64(MaxTotalLocalsBase) + uint64(p.size)/LocalsPerByte
	for i := range n {
		size, err := r.u32()
		if err != nil {
			return err
		}
		if size > MaxFunctionBody {
			return fmt.Errorf("function %d has a body of %d bytes, more than the limit of %d", i, size, MaxFunctionBody)
		}
		if int64(size) > int64(len(r.b)-r.off) {
			return fmt.Errorf("%w: function %d claims %d bytes, %d remain", errMalformed, i, size, len(r.b)-r.off)
		}
		body := &reader{b: r.b[:r.off+int(size)], off: r.off}
		r.off += int(size)
		groups, err := vec(body, "local declarations", MaxFunctionLocals)
		if err != nil {
			return fmt.Errorf("function %d: %w", i, err)
		}
		var locals uint64
		for range groups {
			c, err := body.u32()
			if err != nil {
				return err
			}
			if _, err := body.byte(); err != nil {
				return err
			}
			locals += uint64(c)
			if locals > MaxFunctionLocals {
				return fmt.Errorf("function %d declares %d or more locals, more than the limit of %d", i, locals, MaxFunctionLocals)
			}
		}
		p.totalLocals += locals
		if p.totalLocals > maxTotal {
			return fmt.Errorf("the functions declare %d or more locals in all, more than the limit of %d for a module of %d bytes",
				p.totalLocals, maxTotal, p.size)
		}
		p.maxLocals = max(p.maxLocals, int(locals))
		if err := instructions(body, p); err != nil {
			return fmt.Errorf("function %d: %w", i, err)
		}
	}
	return nil
}

// instructions skips instructions up to the end that closes depth 0 and
// bounds nesting and br_table widths on the way. It knows the immediates of
// every instruction of WebAssembly 2.0 (wazero's default features); an
// opcode it does not know is refused (wazero would refuse it too).
func instructions(r *reader, p *prechecker) error {
	depth := 0
	for {
		op, err := r.byte()
		if err != nil {
			return err
		}
		switch {
		case op == 0x02 || op == 0x03 || op == 0x04: // block, loop, if
			if err := blockType(r); err != nil {
				return err
			}
			depth++
			p.maxDepth = max(p.maxDepth, depth)
			if depth > MaxNestingDepth {
				return fmt.Errorf("blocks nested more than %d deep", MaxNestingDepth)
			}
		case op == 0x0b: // end
			if depth == 0 {
				return nil
			}
			depth--
		case op <= 0x01 || op == 0x05 || op == 0x0f || op == 0x1a || op == 0x1b || op == 0xd1 ||
			(op >= 0x45 && op <= 0xc4):
			// no immediates
		case op == 0x0c || op == 0x0d || op == 0x10 || (op >= 0x20 && op <= 0x26) || op == 0xd0 || op == 0xd2 ||
			op == 0x3f || op == 0x40:
			_, err = r.u32()
		case op == 0x0e: // br_table
			n, err := vec(r, "br_table targets", MaxBrTableTargets)
			if err != nil {
				return err
			}
			p.maxBrTable = max(p.maxBrTable, int(n))
			for range n + 1 {
				if _, err := r.u32(); err != nil {
					return err
				}
			}
		case op == 0x11: // call_indirect
			if _, err = r.u32(); err == nil {
				_, err = r.u32()
			}
		case op == 0x1c: // select t*
			var n uint32
			if n, err = vec(r, "select types", 1); err == nil {
				r.off += int(n)
			}
		case op >= 0x28 && op <= 0x3e: // loads and stores: memarg
			err = memarg(r)
		case op == 0x41:
			err = skipLEB(r, 5)
		case op == 0x42:
			err = skipLEB(r, 10)
		case op == 0x43:
			err = skip(r, 4)
		case op == 0x44:
			err = skip(r, 8)
		case op == 0xfc:
			err = prefixFC(r)
		case op == 0xfd:
			err = prefixFD(r)
		default:
			return fmt.Errorf("%w: unknown opcode 0x%02x", errMalformed, op)
		}
		if err != nil {
			return err
		}
	}
}

func blockType(r *reader) error {
	c, err := r.byte()
	if err != nil {
		return err
	}
	if c == 0x40 || (c >= 0x6f && c <= 0x7f) { // empty or a value type
		return nil
	}
	r.off--
	return skipLEB(r, 5) // a type index (s33)
}

func memarg(r *reader) error {
	if _, err := r.u32(); err != nil {
		return err
	}
	return skipLEB(r, 10) // the offset (u64 with memory64)
}

func prefixFC(r *reader) error {
	sub, err := r.u32()
	if err != nil {
		return err
	}
	switch {
	case sub <= 7: // saturating truncations
		return nil
	case sub == 8: // memory.init
		if _, err := r.u32(); err != nil {
			return err
		}
		_, err = r.byte()
	case sub == 9 || sub == 13 || sub == 15 || sub == 16 || sub == 17:
		_, err = r.u32()
	case sub == 10: // memory.copy
		err = skip(r, 2)
	case sub == 11: // memory.fill
		_, err = r.byte()
	case sub == 12 || sub == 14: // table.init, table.copy
		if _, err = r.u32(); err == nil {
			_, err = r.u32()
		}
	default:
		return fmt.Errorf("%w: unknown opcode 0xfc %d", errMalformed, sub)
	}
	return err
}

func prefixFD(r *reader) error {
	sub, err := r.u32()
	if err != nil {
		return err
	}
	switch {
	case sub <= 11 || sub == 92 || sub == 93: // loads and stores
		return memarg(r)
	case sub == 12 || sub == 13: // v128.const, i8x16.shuffle
		return skip(r, 16)
	case sub >= 21 && sub <= 34: // extract and replace lane
		return skip(r, 1)
	case sub >= 84 && sub <= 91: // load and store lane
		if err := memarg(r); err != nil {
			return err
		}
		return skip(r, 1)
	case sub <= 0xff:
		return nil
	default:
		return fmt.Errorf("%w: unknown opcode 0xfd %d", errMalformed, sub)
	}
}

func skip(r *reader, n int) error {
	if n > len(r.b)-r.off {
		return errMalformed
	}
	r.off += n
	return nil
}

// skipLEB skips a LEB128 number of at most max bytes.
func skipLEB(r *reader, max int) error {
	for range max {
		c, err := r.byte()
		if err != nil {
			return err
		}
		if c&0x80 == 0 {
			return nil
		}
	}
	return errMalformed
}

// customSection bounds the vectors of the "name" section, which wazero
// decodes (other custom sections it skips).
func customSection(r *reader) error {
	name, err := r.name()
	if err != nil {
		return err
	}
	if name != "name" {
		return nil
	}
	for r.off < len(r.b) {
		id, err := r.byte()
		if err != nil {
			return err
		}
		size, err := r.u32()
		if err != nil {
			return err
		}
		if int64(size) > int64(len(r.b)-r.off) {
			return fmt.Errorf("%w: name subsection %d claims %d bytes", errMalformed, id, size)
		}
		sub := &reader{b: r.b[:r.off+int(size)], off: r.off}
		r.off += int(size)
		if id != 1 && id != 2 {
			continue
		}
		// function names: index, name; local names: function index,
		// then a vector of local index, name
		naming := func() error {
			if _, err := sub.u32(); err != nil {
				return err
			}
			_, err := sub.name()
			return err
		}
		err = entries(sub, "names", MaxFunctions, func() error {
			if id == 1 {
				return naming()
			}
			if _, err := sub.u32(); err != nil {
				return err
			}
			return entries(sub, "local names", MaxFunctionLocals, naming)
		})
		if err != nil {
			return err
		}
	}
	return nil
}
