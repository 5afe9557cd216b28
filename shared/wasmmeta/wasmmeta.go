// Package wasmmeta validates an uploaded module without compiling it and
// describes its imports and exports.
//
// wazero's interpreter decodes and validates it; nothing is compiled to
// native code. Only WASI preview1 imports are allowed: the sandbox offers
// nothing else.
package wasmmeta

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/wasmwizard/wasmwizard/shared/apiobject"
)

// WASIModule is the only import namespace a module may use.
const WASIModule = "wasi_snapshot_preview1"

// magic is "\0asm" followed by binary format version 1.
var magic = []byte{0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00}

// Import is one imported item, as a module's imports show it in the API.
type Import = apiobject.Import

// Export is one exported item, as a module's exports show it in the API;
// Params and Results are set for functions.
type Export = apiobject.Export

// Meta describes a valid module.
type Meta struct {
	Imports []Import
	Exports []Export
	// WASI is true when the module imports WASI preview1 or is a command
	// (exports _start).
	WASI bool
	// MemoryMinPages is the declared minimum of its memory (0 if none).
	MemoryMinPages uint32
}

// Export returns the export called name, if any.
func (m Meta) Export(name string) (Export, bool) {
	for _, e := range m.Exports {
		if e.Name == name {
			return e, true
		}
	}
	return Export{}, false
}

// InvalidError says why a module was refused; its message is safe to show
// to the uploader.
type InvalidError struct{ Reason string }

func (e *InvalidError) Error() string { return e.Reason }

// Inspector validates modules. It is safe for concurrent use.
type Inspector struct {
	rt wazero.Runtime
	// isolate, when set, checks large modules in a child process (at most
	// len(slots) at once).
	isolate *IsolateConfig
	slots   chan struct{}
}

// NewInspector returns an Inspector backed by wazero's interpreter, which
// validates without generating native code.
func NewInspector(ctx context.Context) *Inspector {
	return &Inspector{rt: wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter())}
}

// Close releases the inspector's runtime.
func (in *Inspector) Close(ctx context.Context) error { return in.rt.Close(ctx) }

// Inspect validates bin and describes it. An *InvalidError means the bytes
// are not an acceptable module. Every count that sizes an allocation is
// bounded first (Precheck); with NewIsolatedInspector a module larger than
// InProcessMax is then validated in a child process under a memory and time
// budget.
func (in *Inspector) Inspect(ctx context.Context, bin []byte) (Meta, error) {
	if len(bin) < len(magic) || !bytes.Equal(bin[:4], magic[:4]) {
		return Meta{}, &InvalidError{Reason: "not a WebAssembly module: the bytes do not start with \\0asm"}
	}
	if !bytes.Equal(bin[4:8], magic[4:8]) {
		return Meta{}, &InvalidError{Reason: fmt.Sprintf("unsupported WebAssembly binary version % x (want 01 00 00 00)", bin[4:8])}
	}
	if err := Precheck(bin); err != nil {
		return Meta{}, &InvalidError{Reason: "invalid WebAssembly module: " + err.Error()}
	}
	if in.isolate != nil && len(bin) > InProcessMax {
		return in.inspectIsolated(ctx, bin)
	}
	return in.inspect(ctx, bin)
}

// inspect validates bin in this process; Precheck has passed.
func (in *Inspector) inspect(ctx context.Context, bin []byte) (Meta, error) {
	cm, err := in.rt.CompileModule(ctx, bin)
	if err != nil {
		return Meta{}, &InvalidError{Reason: "invalid WebAssembly module: " + err.Error()}
	}
	defer func() { _ = cm.Close(ctx) }()
	imports, err := parseImports(bin)
	if err != nil {
		return Meta{}, &InvalidError{Reason: "invalid WebAssembly module: " + err.Error()}
	}
	return describe(cm, imports)
}

func describe(cm wazero.CompiledModule, imports []Import) (Meta, error) {
	m := Meta{Imports: imports}
	for _, mem := range cm.ImportedMemories() {
		m.MemoryMinPages = mem.Min()
	}
	for _, imp := range m.Imports {
		if imp.Module != WASIModule {
			return Meta{}, &InvalidError{Reason: fmt.Sprintf("imports %s %q from module %q: only %s is available in the sandbox",
				imp.Kind, imp.Name, imp.Module, WASIModule)}
		}
		m.WASI = true
	}
	for name, f := range cm.ExportedFunctions() {
		m.Exports = append(m.Exports, Export{Name: name, Kind: "function",
			Params: typeNames(f.ParamTypes()), Results: typeNames(f.ResultTypes())})
		if name == "_start" {
			m.WASI = true
		}
	}
	for name, mem := range cm.ExportedMemories() {
		m.Exports = append(m.Exports, Export{Name: name, Kind: "memory"})
		if m.MemoryMinPages < mem.Min() {
			m.MemoryMinPages = mem.Min()
		}
	}
	// Names are stored (jsonb), and Postgres cannot store NUL.
	for _, imp := range m.Imports {
		if strings.IndexByte(imp.Name, 0) >= 0 {
			return Meta{}, &InvalidError{Reason: fmt.Sprintf("imports %s %q: names with NUL characters are not accepted", imp.Kind, imp.Name)}
		}
	}
	for _, e := range m.Exports {
		if strings.IndexByte(e.Name, 0) >= 0 {
			return Meta{}, &InvalidError{Reason: fmt.Sprintf("exports %s %q: names with NUL characters are not accepted", e.Kind, e.Name)}
		}
	}
	sort.Slice(m.Exports, func(i, j int) bool { return m.Exports[i].Name < m.Exports[j].Name })
	if m.Imports == nil {
		m.Imports = []Import{}
	}
	if m.Exports == nil {
		m.Exports = []Export{}
	}
	return m, nil
}

func typeNames(ts []api.ValueType) []string {
	out := make([]string, len(ts))
	for i, t := range ts {
		out[i] = api.ValueTypeName(t)
	}
	return out
}
