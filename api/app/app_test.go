package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/api/app"
	"github.com/wasmwizard/wasmwizard/shared/testenv"
)

func TestSubcommands(t *testing.T) {
	t.Parallel()
	dbURL := testenv.DB(t)
	env := func(k string) string {
		return map[string]string{"WIZARD_DATABASE_URL": dbURL, "WIZARD_LOG_LEVEL": "error"}[k]
	}
	var out, errOut bytes.Buffer
	require.Equal(t, 0, app.Run(context.Background(), []string{"migrate"}, env, &out, &errOut), errOut.String())
	require.Contains(t, out.String(), "up to date")

	out.Reset()
	require.Equal(t, 0, app.Run(context.Background(), []string{"accounts", "create", "--name", "cli", "--tier", "basic"}, env, &out, &errOut), errOut.String())
	var acct struct {
		ID   string `json:"id"`
		Tier string `json:"tier"`
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &acct), out.String())
	require.Equal(t, "basic", acct.Tier)

	out.Reset()
	require.Equal(t, 0, app.Run(context.Background(), []string{"keys", "create", "--account", acct.ID}, env, &out, &errOut), errOut.String())
	var key struct {
		Key string `json:"key"`
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &key), out.String())
	require.Regexp(t, `^ww_[0-9A-Za-z]{32}$`, key.Key)

	errOut.Reset()
	require.Equal(t, 1, app.Run(context.Background(), []string{"accounts", "create", "--name", "x", "--tier", "gold"}, env, &out, &errOut))
	require.Contains(t, errOut.String(), "gold")
	require.Equal(t, 2, app.Run(context.Background(), []string{"frobnicate"}, env, &out, &errOut))
	badEnv := func(k string) string { return map[string]string{"WIZARD_HTTP_ADDR": "nope"}[k] }
	errOut.Reset()
	require.Equal(t, 2, app.Run(context.Background(), []string{"serve"}, badEnv, &out, &errOut))
	require.Contains(t, errOut.String(), "WIZARD_HTTP_ADDR")
}
