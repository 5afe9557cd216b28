package client_test

import (
	"encoding"
	"encoding/json"
	"reflect"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/api/client"
	"github.com/wasmwizard/wasmwizard/shared/jobview"
)

// The SDK's Job is its own type (the package imports nothing of the
// server, and the server's Job holds uuid and store types). This test
// fails when the two drift apart: every JSON field of the API's Job, at
// every depth, is in the SDK's with the same name, the same omitempty and
// the same JSON kind, and the SDK has no field the API does not send.
func TestJobMatchesTheAPIsJob(t *testing.T) {
	t.Parallel()
	api := jsonFields(reflect.TypeFor[jobview.Job]())
	sdk := jsonFields(reflect.TypeFor[client.Job]())
	require.Equal(t, api, sdk, "client.Job and shared/jobview.Job differ")
	// The comparison saw the fields, down to the nested ones.
	require.Contains(t, sdk, "limits.max_artifact_bytes: number")
	require.Contains(t, sdk, "artifacts[].sha256: string")
	require.Contains(t, sdk, "stdout_base64,omitempty: null|string")
}

var (
	jsonMarshaler = reflect.TypeFor[json.Marshaler]()
	textMarshaler = reflect.TypeFor[encoding.TextMarshaler]()
)

// jsonFields lists, sorted, the JSON that encoding/json writes for the
// struct type t: one "path: kind" line per value, where a path is made of
// field names (",omitempty" marked), "[]" for an array's items and "{}"
// for a map's values, and a kind is "object", "array", "map", "null|" for
// pointers, or a scalar (time, string, number, bool, raw JSON).
func jsonFields(t reflect.Type) []string {
	var out []string
	addJSONFields(t, "", &out)
	sort.Strings(out)
	return out
}

func addJSONFields(t reflect.Type, path string, out *[]string) {
	kind := ""
	for t.Kind() == reflect.Pointer {
		kind += "null|"
		t = t.Elem()
	}
	switch {
	case t == reflect.TypeFor[time.Time]():
		kind += "time"
	case t == reflect.TypeFor[json.RawMessage]():
		kind += "raw"
	case t.Implements(jsonMarshaler) || reflect.PointerTo(t).Implements(jsonMarshaler):
		kind += "json(" + t.String() + ")"
	case t.Implements(textMarshaler) || reflect.PointerTo(t).Implements(textMarshaler):
		kind += "string"
	default:
		switch t.Kind() {
		case reflect.Slice, reflect.Array:
			*out = append(*out, path+": "+kind+"array")
			addJSONFields(t.Elem(), path+"[]", out)
			return
		case reflect.Map:
			*out = append(*out, path+": "+kind+"map")
			addJSONFields(t.Elem(), path+"{}", out)
			return
		case reflect.Struct:
			if path != "" {
				*out = append(*out, path+": "+kind+"object")
				path += "."
			}
			for f := range t.Fields() {
				name, opts, _ := strings.Cut(f.Tag.Get("json"), ",")
				if !f.IsExported() || name == "-" {
					continue
				}
				if f.Anonymous && name == "" {
					panic("jsonFields: embedded struct " + f.Name + " (flatten it here if a type ever has one)")
				}
				if name == "" {
					name = f.Name
				}
				if strings.Contains(opts, "omitempty") {
					name += ",omitempty"
				}
				addJSONFields(f.Type, path+name, out)
			}
			return
		case reflect.String:
			kind += "string"
		case reflect.Bool:
			kind += "bool"
		case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
			reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64, reflect.Float32, reflect.Float64:
			kind += "number"
		case reflect.Interface:
			kind += "any"
		default:
			kind += t.String()
		}
	}
	*out = append(*out, path+": "+kind)
}
