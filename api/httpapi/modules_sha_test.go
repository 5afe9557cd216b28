package httpapi_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/fixtures"
	"github.com/wasmwizard/wasmwizard/shared/store"
)

func TestListModulesBySHA256(t *testing.T) {
	t.Parallel()
	a := newLimitedAPI(t, "uploads_per_minute = 0")
	wasm := fixtures.Bytes("hello")
	sum := sha256.Sum256(wasm)
	hexSum := hex.EncodeToString(sum[:])

	get := func(query string) (int, map[string]any) {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, a.url+"/v1/modules"+query, nil)
		require.NoError(t, err)
		req.Header.Set("Authorization", "Bearer "+a.key)
		res, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer func() { _ = res.Body.Close() }()
		b, err := io.ReadAll(res.Body)
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, json.Unmarshal(b, &m), "%s", b)
		return res.StatusCode, m
	}

	status, page := get("?sha256=" + hexSum)
	require.Equal(t, http.StatusOK, status)
	require.Empty(t, page["data"])
	require.Nil(t, page["next_cursor"])

	status, mod := a.post(t, "/v1/modules?name=hello", "application/wasm", wasm)
	require.Equal(t, http.StatusCreated, status, "%v", mod)
	a.post(t, "/v1/modules?name=echo", "application/wasm", fixtures.Bytes("echo"))

	status, page = get("?sha256=" + hexSum + "&limit=1")
	require.Equal(t, http.StatusOK, status)
	data := page["data"].([]any)
	require.Len(t, data, 1)
	require.Equal(t, mod["id"], data[0].(map[string]any)["id"])

	for _, bad := range []string{"?sha256=", "?sha256=" + strings.ToUpper(hexSum), "?sha256=" + hexSum[:63],
		"?sha256=" + hexSum + "&sha256=" + hexSum, "?sha256=" + strings.Repeat("z", 64)} {
		status, prob := get(bad)
		require.Equal(t, http.StatusBadRequest, status, bad)
		require.Equal(t, "validation_failed", prob["code"], bad)
		require.Equal(t, "sha256", prob["errors"].([]any)[0].(map[string]any)["field"], bad)
	}

	// Another account's module of the same bytes is not found.
	other, err := a.st.CreateAccount(context.Background(), store.Actor{Name: "t"}, "other", "free")
	require.NoError(t, err)
	_, a.key, err = a.st.CreateKey(context.Background(), store.Actor{Name: "t"}, other.ID, "")
	require.NoError(t, err)
	status, page = get("?sha256=" + hexSum)
	require.Equal(t, http.StatusOK, status)
	require.Empty(t, page["data"])
}
