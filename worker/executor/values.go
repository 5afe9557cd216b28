package executor

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/tetratelabs/wazero/api"
)

// maxSafeInt is the largest integer a JSON number carries exactly in every
// client (2^53).
const maxSafeInt = 1 << 53

// EncodeParams converts JSON params (numbers, or strings holding numbers) to
// wazero's uint64 stack values for a function of the given parameter types.
func EncodeParams(types []api.ValueType, params []json.RawMessage) ([]uint64, error) {
	if len(params) != len(types) {
		return nil, fmt.Errorf("the function takes %d params, got %d", len(types), len(params))
	}
	out := make([]uint64, len(types))
	for i, t := range types {
		lit, err := literal(params[i])
		if err != nil {
			return nil, fmt.Errorf("params[%d]: %w", i, err)
		}
		switch t {
		case api.ValueTypeI32:
			n, err := strconv.ParseInt(lit, 10, 64)
			if err != nil || n < math.MinInt32 || n > math.MaxUint32 {
				return nil, fmt.Errorf("params[%d]: %s is not an i32", i, lit)
			}
			out[i] = api.EncodeI32(int32(uint32(n)))
		case api.ValueTypeI64:
			n, err := strconv.ParseInt(lit, 10, 64)
			if err != nil {
				u, uerr := strconv.ParseUint(lit, 10, 64)
				if uerr != nil {
					return nil, fmt.Errorf("params[%d]: %s is not an i64", i, lit)
				}
				n = int64(u)
			}
			out[i] = api.EncodeI64(n)
		case api.ValueTypeF32:
			f, err := strconv.ParseFloat(lit, 32)
			if err != nil {
				return nil, fmt.Errorf("params[%d]: %s is not an f32", i, lit)
			}
			out[i] = api.EncodeF32(float32(f))
		case api.ValueTypeF64:
			f, err := strconv.ParseFloat(lit, 64)
			if err != nil {
				return nil, fmt.Errorf("params[%d]: %s is not an f64", i, lit)
			}
			out[i] = api.EncodeF64(f)
		default:
			return nil, fmt.Errorf("params[%d]: type %s cannot be passed from JSON", i, api.ValueTypeName(t))
		}
	}
	return out, nil
}

// literal returns the number a JSON param holds, whether written as a number
// or as a string.
func literal(raw json.RawMessage) (string, error) {
	s := strings.TrimSpace(string(raw))
	if strings.HasPrefix(s, `"`) {
		var str string
		if err := json.Unmarshal(raw, &str); err != nil {
			return "", fmt.Errorf("not a string: %w", err)
		}
		return strings.TrimSpace(str), nil
	}
	var n json.Number
	if err := json.Unmarshal(raw, &n); err != nil {
		return "", fmt.Errorf("want a number or a string holding one")
	}
	return n.String(), nil
}

// DecodeResults converts result stack values to JSON: i32 as a number, i64
// as a number when |v| ≤ 2^53 and as a string beyond, floats as numbers
// (NaN and infinities as strings).
func DecodeResults(types []api.ValueType, vals []uint64) []json.RawMessage {
	out := make([]json.RawMessage, len(types))
	for i, t := range types {
		var s string
		switch t {
		case api.ValueTypeI32:
			s = strconv.FormatInt(int64(api.DecodeI32(vals[i])), 10)
		case api.ValueTypeI64:
			n := int64(vals[i])
			s = strconv.FormatInt(n, 10)
			if n > maxSafeInt || n < -maxSafeInt {
				s = strconv.Quote(s)
			}
		case api.ValueTypeF32:
			s = formatFloat(float64(api.DecodeF32(vals[i])), 32)
		case api.ValueTypeF64:
			s = formatFloat(api.DecodeF64(vals[i]), 64)
		default:
			s = strconv.Quote(fmt.Sprintf("0x%x", vals[i]))
		}
		out[i] = json.RawMessage(s)
	}
	return out
}

func formatFloat(f float64, bits int) string {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return strconv.Quote(strconv.FormatFloat(f, 'g', -1, bits))
	}
	return strconv.FormatFloat(f, 'g', -1, bits)
}
