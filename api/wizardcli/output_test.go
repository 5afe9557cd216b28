package wizardcli_test

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"go.yaml.in/yaml/v3"

	"github.com/wasmwizard/wasmwizard/shared/fixtures"
)

// apiJSON reads path from the real API as the CLI's key and decodes its
// JSON as it came, into generic values.
func (c *cli) apiJSON(path string) any {
	c.t.Helper()
	req, err := http.NewRequestWithContext(c.t.Context(), http.MethodGet, platform.URL+path, nil)
	require.NoError(c.t, err)
	req.Header.Set("Authorization", "Bearer "+c.env["WIZARD_API_KEY"])
	res, err := http.DefaultClient.Do(req)
	require.NoError(c.t, err)
	defer func() { _ = res.Body.Close() }()
	require.Equal(c.t, http.StatusOK, res.StatusCode)
	var v any
	require.NoError(c.t, json.NewDecoder(res.Body).Decode(&v))
	return v
}

// decodeJSON decodes a command's JSON output into generic values.
func decodeJSON(t *testing.T, out string) any {
	t.Helper()
	var v any
	require.NoError(t, json.Unmarshal([]byte(out), &v), out)
	return v
}

// Every field GET /v1/jobs/{id} sends survives wizard's -o json and -o
// yaml, with its value: a job with input files, preopens, collect patterns
// and artifacts, decoded from the API's own JSON and from the CLI's.
func TestJobOutputKeepsEveryFieldTheAPISends(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	src := t.TempDir()
	in := writeFile(t, src, "in.txt", []byte("input\n"))
	r := c.run("", "run", fixture(t, fixtures.Copy), "--file", in+":/in/in.txt", "--collect", "/out/**", "--detach",
		"--", "/in/in.txt", "/out/x/in.txt")
	require.Equal(t, 0, r.code, "%+v", r)
	id := strings.TrimSpace(r.stdout)
	r = c.run("", "jobs", "wait", id, "-o", "json")
	require.Equal(t, 0, r.code, "%+v", r)

	api := c.apiJSON("/v1/jobs/" + id).(map[string]any)
	// The job is one that exercises the file fields.
	require.Equal(t, float64(1), api["input_files"])
	require.Equal(t, []any{"/"}, api["preopens"])
	require.Len(t, api["artifacts"], 1)
	limits := api["limits"].(map[string]any)
	require.Contains(t, limits, "max_fs_bytes")
	require.Contains(t, limits, "max_artifact_bytes")

	require.Equal(t, api, decodeJSON(t, r.stdout), "jobs wait -o json")
	r = c.run("", "jobs", "get", id, "-o", "json")
	require.Equal(t, 0, r.code, "%+v", r)
	require.Equal(t, api, decodeJSON(t, r.stdout), "jobs get -o json")

	r = c.run("", "jobs", "get", id, "-o", "yaml")
	require.Equal(t, 0, r.code, "%+v", r)
	var y any
	require.NoError(t, yaml.Unmarshal([]byte(r.stdout), &y))
	yj, err := json.Marshal(y) // YAML's integers and JSON's numbers compared as JSON
	require.NoError(t, err)
	require.Equal(t, api, decodeJSON(t, string(yj)), "jobs get -o yaml")

	// A page of jobs, likewise.
	r = c.run("", "jobs", "list", "-o", "json")
	require.Equal(t, 0, r.code, "%+v", r)
	require.Equal(t, c.apiJSON("/v1/jobs"), decodeJSON(t, r.stdout), "jobs list -o json")
	r = c.run("", "jobs", "artifacts", id, "-o", "json")
	require.Equal(t, 0, r.code, "%+v", r)
	require.Equal(t, c.apiJSON("/v1/jobs/" + id + "/artifacts").(map[string]any)["data"], decodeJSON(t, r.stdout), "jobs artifacts -o json")

	// And the job's module.
	mod := api["module_id"].(string)
	r = c.run("", "modules", "get", mod, "-o", "json")
	require.Equal(t, 0, r.code, "%+v", r)
	require.Equal(t, c.apiJSON("/v1/modules/"+mod), decodeJSON(t, r.stdout), "modules get -o json")
	r = c.run("", "modules", "list", "-o", "json")
	require.Equal(t, 0, r.code, "%+v", r)
	require.Equal(t, c.apiJSON("/v1/modules"), decodeJSON(t, r.stdout), "modules list -o json")
}

// writeFile writes b at dir/rel and returns the path.
func writeFile(t *testing.T, dir, rel string, b []byte) string {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(rel))
	require.NoError(t, os.MkdirAll(filepath.Dir(p), 0o750))
	require.NoError(t, os.WriteFile(p, b, 0o600))
	return p
}
