package wasmmeta

import (
	"errors"
	"fmt"
)

// errMalformed is returned for bytes that do not follow the binary format.
var errMalformed = errors.New("malformed module")

// parseImports reads the import section of a module binary: every import's
// module, name and kind, including tables and globals (which wazero's API
// does not list). It is run on modules wazero has validated, but it trusts
// nothing: every read is bounds-checked.
func parseImports(bin []byte) ([]Import, error) {
	var out []Import
	err := sections(bin, func(id byte, sec *reader) error {
		if id != 2 { // not the import section
			return nil
		}
		count, err := sec.u32()
		if err != nil {
			return err
		}
		for i := uint32(0); i < count; i++ {
			imp, err := readImport(sec)
			if err != nil {
				return err
			}
			out = append(out, imp)
		}
		return errImportsRead
	})
	if err != nil && !errors.Is(err, errImportsRead) {
		return nil, err
	}
	return out, nil
}

// errImportsRead stops parseImports's walk after the import section.
var errImportsRead = errors.New("imports read")

// readImport reads one entry of the import section.
func readImport(sec *reader) (Import, error) {
	mod, err := sec.name()
	if err != nil {
		return Import{}, err
	}
	name, err := sec.name()
	if err != nil {
		return Import{}, err
	}
	kind, err := sec.byte()
	if err != nil {
		return Import{}, err
	}
	imp := Import{Module: mod, Name: name}
	switch kind {
	case 0x00:
		imp.Kind = "function"
		_, err = sec.u32()
	case 0x01:
		imp.Kind = "table"
		if _, err = sec.byte(); err == nil {
			err = sec.limits()
		}
	case 0x02:
		imp.Kind = "memory"
		err = sec.limits()
	case 0x03:
		imp.Kind = "global"
		if _, err = sec.byte(); err == nil {
			_, err = sec.byte()
		}
	default:
		return Import{}, fmt.Errorf("%w: import kind 0x%02x", errMalformed, kind)
	}
	return imp, err
}

type reader struct {
	b   []byte
	off int
}

func (r *reader) byte() (byte, error) {
	if r.off >= len(r.b) {
		return 0, errMalformed
	}
	c := r.b[r.off]
	r.off++
	return c, nil
}

// u32 reads an unsigned LEB128 of at most 5 bytes.
func (r *reader) u32() (uint32, error) {
	var v uint32
	for shift := 0; shift < 35; shift += 7 {
		c, err := r.byte()
		if err != nil {
			return 0, err
		}
		if shift == 28 && c > 0x0f {
			return 0, errMalformed
		}
		v |= uint32(c&0x7f) << shift
		if c&0x80 == 0 {
			return v, nil
		}
	}
	return 0, errMalformed
}

func (r *reader) name() (string, error) {
	n, err := r.u32()
	if err != nil {
		return "", err
	}
	if int(n) > len(r.b)-r.off {
		return "", errMalformed
	}
	s := string(r.b[r.off : r.off+int(n)])
	r.off += int(n)
	return s, nil
}

func (r *reader) limits() error {
	flags, err := r.byte()
	if err != nil {
		return err
	}
	if _, err := r.u32(); err != nil {
		return err
	}
	if flags&1 != 0 {
		_, err = r.u32()
	}
	return err
}
