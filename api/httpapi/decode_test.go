package httpapi

import (
	"bytes"
	"mime/multipart"
	"testing"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
)

// Every body, however broken, decodes or fails with a validation error that
// names a field.
func FuzzDecodeJobRequest(f *testing.F) {
	f.Add([]byte(`{"module_id":"0190b0a0-0000-7000-8000-000000000000","args":["a"],"env":{"A":"b"},"params":[1,"2"]}`))
	f.Add([]byte(`{"timeout_ms":"x"}`))
	f.Add([]byte(`{"a":1}`))
	f.Add([]byte(`{} {}`))
	f.Add([]byte(`[`))
	f.Fuzz(func(t *testing.T, body []byte) {
		var req jobRequest
		err := decodeJSONBytes(body, &req)
		if err == nil {
			return
		}
		e := apperr.As(err)
		if e == nil || e.Code != apperr.Invalid || len(e.Fields) == 0 || e.Fields[0].Field == "" {
			t.Fatalf("decode %q: %v", body, err)
		}
	})
}

// The module form reader (uploads and /api/execute alike) never panics,
// fails only with application errors, and keeps to its limits.
func FuzzReadModuleForm(f *testing.F) {
	f.Add([]byte("--b\r\nContent-Disposition: form-data; name=\"module\"; filename=\"m.wasm\"\r\n\r\n\x00asm\x01\x00\x00\x00\r\n--b--\r\n"))
	f.Add([]byte("--b\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\nx\r\n--b--\r\n"))
	f.Add([]byte("--b\r\nContent-Disposition: form-data; name=\"module\"; filename=\"m.wasm\"\r\n\r\n\x00asm\x01\x00\x00\x00\r\n--b\r\nContent-Disposition: form-data; name=\"input\"\r\n\r\nhi\r\n--b--\r\n"))
	f.Add([]byte("garbage"))
	f.Fuzz(func(t *testing.T, body []byte) {
		content, texts, err := readModuleForm(multipart.NewReader(bytes.NewReader(body), "b"), "module", 1024,
			map[string]int64{"name": maxModuleName, "input": 16})
		if err != nil {
			if apperr.As(err) == nil {
				t.Fatalf("non-application error: %v", err)
			}
			return
		}
		if len(content) > 1024 || len(texts["name"]) > maxModuleName+1 || len(texts["input"]) > 17 || len(texts) > 2 {
			t.Fatalf("read %d module bytes and text parts %v past their limits", len(content), texts)
		}
	})
}
