package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
)

// decodeJSON reads a JSON request body into v, refusing unknown fields and
// trailing data, and naming the field at fault when it can.
func decodeJSON(c echo.Context, v any) error {
	ct := c.Request().Header.Get(echo.HeaderContentType)
	if ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		if err != nil || mt != "application/json" {
			return apperr.New(apperr.UnsupportedMediaType, "send the request body as application/json")
		}
	}
	body, err := io.ReadAll(c.Request().Body)
	if err != nil {
		if apperr.As(err) != nil {
			return err
		}
		return apperr.Validation(apperr.FieldError{Field: "body", Message: "could not be read"})
	}
	return decodeJSONBytes(body, v)
}

func decodeJSONBytes(body []byte, v any) error {
	if len(bytes.TrimSpace(body)) == 0 {
		return apperr.Validation(apperr.FieldError{Field: "body", Message: "is empty; send a JSON object"})
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if dec.More() {
		return apperr.Validation(apperr.FieldError{Field: "body", Message: "has data after the JSON object"})
	}
	return nil
}

func jsonError(err error) error {
	var syn *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &syn):
		return apperr.Validation(apperr.FieldError{Field: "body",
			Message: fmt.Sprintf("malformed JSON at byte %d: %s", syn.Offset, syn.Error())})
	case errors.As(err, &typ):
		field := typ.Field
		if field == "" {
			field = "body"
		}
		return apperr.Validation(apperr.FieldError{Field: field,
			Message: fmt.Sprintf("must be %s, not %s", jsonKind(typ.Type.Kind().String()), typ.Value)})
	case errors.Is(err, io.ErrUnexpectedEOF):
		return apperr.Validation(apperr.FieldError{Field: "body", Message: "malformed JSON: unexpected end of input"})
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		if name == "" {
			return apperr.Validation(apperr.FieldError{Field: "body", Message: "has a field with an empty name"})
		}
		return apperr.Validation(apperr.FieldError{Field: name, Message: "is not a known field"})
	}
	return apperr.Validation(apperr.FieldError{Field: "body", Message: "malformed JSON: " + err.Error()})
}

func jsonKind(k string) string {
	switch k {
	case "string":
		return "a string"
	case "int", "int32", "int64", "uint", "uint32", "uint64", "float64", "float32":
		return "a number"
	case "bool":
		return "true or false"
	case "slice", "array":
		return "an array"
	case "map", "struct", "ptr":
		return "an object"
	}
	return "of another type"
}
