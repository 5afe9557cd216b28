package httpapi_test

import (
	"bytes"
	"context"
	"fmt"
	"mime/multipart"
	"runtime"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/api/httpapi"
	"github.com/wasmwizard/wasmwizard/platformtest/testmain"
	"github.com/wasmwizard/wasmwizard/shared/fixtures"
)

// The test binary doubles as the upload-check child of the isolated
// inspector, as the API binary does.
func TestMain(m *testing.M) { testmain.Main(m) }

// newIsolatedAPI is a test API whose uploads are checked as the API binary
// checks them: large modules in a child process under a memory budget.
func newIsolatedAPI(t *testing.T) testAPI {
	t.Helper()
	in := testmain.IsolatedInspector(t)
	return newTestAPI(t, func(_ *redis.Client, d *httpapi.Deps) { d.Inspector = in })
}

// requireRefusedUpload uploads wasm and requires a 400 invalid_module whose
// body says refusal, with less than maxAlloc bytes allocated meanwhile.
func requireRefusedUpload(t *testing.T, a testAPI, wasm []byte, refusal string, maxAlloc uint64) {
	t.Helper()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	status, body := a.post(t, "/v1/modules", "application/wasm", wasm)
	runtime.ReadMemStats(&after)
	require.Equal(t, 400, status, "%v", body)
	require.Equal(t, "invalid_module", body["code"], "%v", body)
	require.Contains(t, fmt.Sprint(body), refusal)
	require.Less(t, after.TotalAlloc-before.TotalAlloc, maxAlloc)
}

// The review's 30-byte module declares 2^30 locals in one function: it grew
// the API to 23.7 GB. Its upload, and an /api/execute of it, answer 400
// invalid_module naming the count, and the API allocates next to nothing.
// (Before the bound, 1M locals cost 404 MiB; this test only sends 2^30 to
// the bounded path.)
func TestUploadOfLocalsBombIsRefused(t *testing.T) {
	a := newIsolatedAPI(t)
	bomb := fixtures.LocalsBomb(1 << 30)
	requireRefusedUpload(t, a, bomb, "locals, more than the limit", 64<<20)

	// /api/execute takes the same check.
	var form bytes.Buffer
	mw := multipart.NewWriter(&form)
	part, err := mw.CreateFormFile("wasm", "bomb.wasm")
	require.NoError(t, err)
	_, _ = part.Write(bomb)
	require.NoError(t, mw.Close())
	status, body := a.post(t, "/api/execute", mw.FormDataContentType(), form.Bytes())
	require.Equal(t, 400, status, "%v", body)
	require.Contains(t, body["error"], "locals, more than the limit")
}

// A 7 MiB function of `i32.const 0; drop` needs ~250 times its size to
// validate (a 7 MiB module took 1.17 GB, a 50 MiB one crashed the API).
// Its upload is validated in a child within 64 times its size plus 64 MiB
// and is refused as too complex; this process allocates little.
func TestUploadOfStraightLineIsCheckedWithinBudget(t *testing.T) {
	if raceEnabled {
		t.Skip("a race-instrumented check child runs without its OS memory limit")
	}
	a := newIsolatedAPI(t)
	_, err := a.st.DB().ExecContext(context.Background(), `UPDATE tiers SET max_module_bytes = 16 << 20 WHERE name = 'free'`)
	require.NoError(t, err)
	bin := fixtures.StraightLine(7 << 20 / 3)
	// The body is read and held once or twice; validation is elsewhere.
	requireRefusedUpload(t, a, bin, "too complex to validate within its budget", uint64(8*len(bin)))
}
