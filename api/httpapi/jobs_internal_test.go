package httpapi

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/hashicorp/golang-lru/v2/expirable"
	"github.com/lib/pq"
	"github.com/stretchr/testify/require"

	"github.com/wasmwizard/wasmwizard/shared/apperr"
	"github.com/wasmwizard/wasmwizard/shared/store"
	"github.com/wasmwizard/wasmwizard/shared/wasmmeta"
	"github.com/wasmwizard/wasmwizard/shared/webhook"
)

// buildJobBundle is a server that can validate jobs without a database:
// its module cache holds the two modules the requests name.
type buildJobBundle struct {
	s       *Server
	p       store.Principal
	command store.Module // see commandExports
	reactor store.Module // exports add(i32, i32) only
}

// The exports of the command module: _start, add(i32, i32), a function of
// as many params as a job may pass, a function with the longest name a
// job may name, and a memory.
var (
	addExport      = wasmmeta.Export{Name: "add", Kind: "function", Params: []string{"i32", "i32"}, Results: []string{"i32"}}
	longName       = strings.Repeat("f", maxFunction)
	commandExports = []wasmmeta.Export{{Name: "_start", Kind: "function"}, addExport,
		{Name: "many", Kind: "function", Params: copies("i64", maxParams)}, {Name: longName, Kind: "function"},
		{Name: "memory", Kind: "memory"}}
)

func setupBuildJob(t *testing.T) buildJobBundle {
	t.Helper()
	tier := validTier()
	tier.Name, tier.QueueWeight, tier.MaxConcurrentRuns = "basic", 3, 5
	b := buildJobBundle{
		s: &Server{queue: "t:jobs", modules: expirable.NewLRU[moduleKey, store.Module](10, nil, time.Hour)},
		p: store.Principal{KeyID: uuid.New(), AccountID: uuid.New(), Tier: tier},
	}
	b.command = store.Module{ID: uuid.New(), AccountID: b.p.AccountID, SHA256: []byte{1, 2, 3},
		Exports: store.JSON[[]wasmmeta.Export]{V: commandExports}}
	b.reactor = store.Module{ID: uuid.New(), AccountID: b.p.AccountID, SHA256: []byte{4, 5, 6},
		Exports: store.JSON[[]wasmmeta.Export]{V: []wasmmeta.Export{addExport}}}
	for _, m := range []store.Module{b.command, b.reactor} {
		b.s.modules.Add(moduleKey{b.p.AccountID, m.ID}, m)
	}
	return b
}

// build decodes the request's files, as the handlers do, and validates it.
// The request names the command module, unless its ModuleID is "reactor"
// (the reactor module) or "none" (no module).
func (b buildJobBundle) build(ctx context.Context, t *testing.T, req jobRequest) (store.Job, error) {
	t.Helper()
	switch req.ModuleID {
	case "":
		req.ModuleID = b.command.ID.String()
	case "reactor":
		req.ModuleID = b.reactor.ID.String()
	case "none":
		req.ModuleID = ""
	}
	require.Empty(t, decodeFiles(&req))
	return b.s.buildJob(ctx, b.p, req)
}

func ptr[T any](v T) *T { return &v }

func rawParams(raw ...string) []json.RawMessage {
	out := make([]json.RawMessage, len(raw))
	for i, r := range raw {
		out[i] = json.RawMessage(r)
	}
	return out
}

// copies is n times s.
func copies(s string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = s
	}
	return out
}

// nKeys is n keys with a value each.
func nKeys(n int) map[string]string {
	out := make(map[string]string, n)
	for i := range n {
		out[fmt.Sprint("k", i)] = "v"
	}
	return out
}

// A valid request becomes the job to insert: the tier's defaults where it
// says nothing, its own values (at the edges of the tier's limits) where
// it does.
func TestBuildJobAcceptsValidRequests(t *testing.T) {
	t.Parallel()
	b := setupBuildJob(t)
	tier := b.p.Tier

	t.Run("the module alone gets every default", func(t *testing.T) {
		t.Parallel()
		j, err := b.build(context.Background(), t, jobRequest{ModuleID: b.command.ID.String()})
		require.NoError(t, err)
		require.Equal(t, store.Job{
			AccountID: b.p.AccountID, ModuleID: b.command.ID, ModuleSHA256: b.command.SHA256,
			Queue: "t:jobs:basic", QueueWeight: 3, Function: "_start",
			Args: store.JSON[[]string]{V: []string{}}, Env: store.JSON[map[string]string]{V: map[string]string{}},
			Params: store.JSON[[]json.RawMessage]{V: []json.RawMessage{}}, Metadata: store.JSON[map[string]string]{V: map[string]string{}},
			TimeoutMS: tier.DefaultTimeoutMS, MemoryLimitMB: tier.DefaultMemoryMB, MaxOutputBytes: tier.DefaultOutputBytes,
			Preopens: pq.StringArray{"/"}, MaxFSBytes: tier.MaxFSBytes, MaxArtifactBytes: tier.MaxArtifactBytes,
		}, j)
	})

	tests := []struct {
		name  string
		req   jobRequest // see build for its ModuleID
		check func(t *testing.T, j store.Job)
	}{
		{name: "an exported function with its params",
			req: jobRequest{Function: "add", Params: rawParams(`1`, `"-2"`)},
			check: func(t *testing.T, j store.Job) {
				require.Equal(t, "add", j.Function)
				require.Equal(t, rawParams(`1`, `"-2"`), j.Params.V)
			}},
		{name: "a reactor's exported function",
			req:   jobRequest{ModuleID: "reactor", Function: "add", Params: rawParams(`-1`, `2`)},
			check: func(t *testing.T, j store.Job) { require.Equal(t, "add", j.Function) }},
		{name: "the smallest limits",
			req: jobRequest{TimeoutMS: ptr(1), MemoryLimitMB: ptr(1), MaxOutputBytes: ptr(1)},
			check: func(t *testing.T, j store.Job) {
				require.Equal(t, []int{1, 1, 1}, []int{j.TimeoutMS, j.MemoryLimitMB, j.MaxOutputBytes})
			}},
		{name: "the tier's largest limits",
			req: jobRequest{TimeoutMS: ptr(tier.MaxTimeoutMS), MemoryLimitMB: ptr(tier.MaxMemoryMB), MaxOutputBytes: ptr(tier.MaxOutputBytes)},
			check: func(t *testing.T, j store.Job) {
				require.Equal(t, []int{tier.MaxTimeoutMS, tier.MaxMemoryMB, tier.MaxOutputBytes},
					[]int{j.TimeoutMS, j.MemoryLimitMB, j.MaxOutputBytes})
			}},
		{name: "as many args as allowed, as long as allowed",
			req:   jobRequest{Args: append(copies("a", maxArgs-1), strings.Repeat("é", maxArgBytes/2))},
			check: func(t *testing.T, j store.Job) { require.Len(t, j.Args.V, maxArgs) }},
		{name: "as many env entries as allowed",
			req:   jobRequest{Env: nKeys(maxEnv)},
			check: func(t *testing.T, j store.Job) { require.Equal(t, nKeys(maxEnv), j.Env.V) }},
		{name: "an env entry as long as allowed, with an empty value",
			req: jobRequest{Env: map[string]string{"A": strings.Repeat("v", maxEnvBytes-1), "B": ""}},
			check: func(t *testing.T, j store.Job) {
				require.Equal(t, map[string]string{"A": strings.Repeat("v", maxEnvBytes-1), "B": ""}, j.Env.V)
			}},
		{name: "stdin as text, as long as allowed",
			req:   jobRequest{Stdin: ptr(strings.Repeat("x", maxStdinBytes))},
			check: func(t *testing.T, j store.Job) { require.Len(t, j.Stdin, maxStdinBytes) }},
		{name: "stdin as base64",
			req:   jobRequest{StdinBase64: ptr(base64.StdEncoding.EncodeToString([]byte{0, 0xff}))},
			check: func(t *testing.T, j store.Job) { require.Equal(t, []byte{0, 0xff}, j.Stdin) }},
		{name: "empty stdin",
			req:   jobRequest{Stdin: ptr("")},
			check: func(t *testing.T, j store.Job) { require.Equal(t, []byte{}, j.Stdin) }},
		{name: "as many params as allowed",
			req:   jobRequest{Function: "many", Params: rawParams(copies("1", maxParams)...)},
			check: func(t *testing.T, j store.Job) { require.Len(t, j.Params.V, maxParams) }},
		{name: "the longest function name",
			req:   jobRequest{Function: longName},
			check: func(t *testing.T, j store.Job) { require.Equal(t, longName, j.Function) }},
		{name: "a webhook URL, trimmed",
			req: jobRequest{WebhookURL: ptr(" https://1.1.1.1/hook ")},
			check: func(t *testing.T, j store.Job) {
				require.Equal(t, ptr("https://1.1.1.1/hook"), j.WebhookURL)
			}},
		{name: "as many metadata keys as allowed",
			req:   jobRequest{Metadata: nKeys(maxMetadata)},
			check: func(t *testing.T, j store.Job) { require.Equal(t, nKeys(maxMetadata), j.Metadata.V) }},
		{name: "the longest metadata key and value",
			req:   jobRequest{Metadata: map[string]string{strings.Repeat("k", maxMetadataKey): strings.Repeat("v", maxMetadataValue)}},
			check: func(t *testing.T, j store.Job) { require.Len(t, j.Metadata.V, 1) }},
		{name: "deterministic",
			req:   jobRequest{Deterministic: true},
			check: func(t *testing.T, j store.Job) { require.True(t, j.Deterministic) }},
		{name: "files under preopens, with patterns to collect",
			req: jobRequest{Preopens: []string{"data", "/tmp"}, Collect: []string{"/tmp/*.txt", "/data/**"},
				Files: []fileRequest{{Path: "/data/in.txt", Content: "hi", Mode: "rw"},
					{Path: "/tmp/b/c", Content: base64.StdEncoding.EncodeToString([]byte{0}), Encoding: "base64", Mode: "ro"}}},
			check: func(t *testing.T, j store.Job) {
				require.Equal(t, pq.StringArray{"data", "/tmp"}, j.Preopens)
				require.Equal(t, pq.StringArray{"/tmp/*.txt", "/data/**"}, j.Collect)
				require.Equal(t, []store.JobInput{{Path: "/data/in.txt", Mode: "rw", Content: []byte("hi")},
					{Path: "/tmp/b/c", Mode: "ro", Content: []byte{0}}}, j.Files)
			}},
		{name: "files as large as the tier allows",
			req: jobRequest{Files: []fileRequest{{Path: "/a", Content: strings.Repeat("a", int(tier.MaxInputBytes)-1)},
				{Path: "/b", Content: "b"}}},
			check: func(t *testing.T, j store.Job) { require.Len(t, j.Files, 2) }},
		{name: "no preopens at all",
			req:   jobRequest{Preopens: []string{}},
			check: func(t *testing.T, j store.Job) { require.Equal(t, pq.StringArray{}, j.Preopens) }},
		{name: "as many preopens and patterns as allowed",
			req: func() jobRequest {
				r := jobRequest{Collect: copies("/out/*", 64)}
				for i := range maxPreopens {
					r.Preopens = append(r.Preopens, fmt.Sprint("/d", i))
				}
				return r
			}(),
			check: func(t *testing.T, j store.Job) {
				require.Len(t, j.Preopens, maxPreopens)
				require.Len(t, j.Collect, 64)
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			j, err := b.build(context.Background(), t, tt.req)
			require.NoError(t, err)
			tt.check(t, j)
		})
	}
}

// Each rule of buildJob refuses its field with validation_failed, naming
// the field and what it must be.
func TestBuildJobRefusesEachInvalidField(t *testing.T) {
	t.Parallel()
	b := setupBuildJob(t)
	tier := b.p.Tier
	const (
		textMsg     = "must be UTF-8 without NUL, at most %d bytes"
		envMsg      = "names must be non-empty without '=' or NUL, values without NUL, name and value together at most 4096 bytes"
		paramMsg    = "must be a number or a string holding a number"
		metadataMsg = "keys must be 1 to 64 bytes, values at most 512 bytes, both UTF-8 without NUL"
	)
	timeoutMsg := fmt.Sprintf("must be from 1 to %d ms on the basic tier", tier.MaxTimeoutMS)
	memoryMsg := fmt.Sprintf("must be from 1 to %d MiB on the basic tier", tier.MaxMemoryMB)
	outputMsg := fmt.Sprintf("must be from 1 to %d bytes on the basic tier", tier.MaxOutputBytes)
	functionMsg := fmt.Sprintf(textMsg, maxFunction)
	argMsg := fmt.Sprintf(textMsg, maxArgBytes)
	tooLargeStdin := fmt.Sprintf("is %d bytes, at most %d are allowed", maxStdinBytes+1, maxStdinBytes)
	notAllowed := func(host string) string {
		return fmt.Sprintf("host %q is not allowed: it must resolve, within 3s, to public addresses only", host)
	}

	tests := []struct {
		name string
		req  jobRequest // see build for its ModuleID
		want []apperr.FieldError
	}{
		{name: "function too long", req: jobRequest{Function: strings.Repeat("f", maxFunction+1)}, want: fieldErr("function", functionMsg)},
		{name: "function with NUL", req: jobRequest{Function: "a\x00"}, want: fieldErr("function", functionMsg)},
		{name: "function not UTF-8", req: jobRequest{Function: "\xff"}, want: fieldErr("function", functionMsg)},

		{name: "no module_id", req: jobRequest{ModuleID: "none"}, want: fieldErr("module_id", "is required")},
		{name: "module_id not an ID", req: jobRequest{ModuleID: "nope"}, want: fieldErr("module_id", "is not a module ID")},

		{name: "too many args", req: jobRequest{Args: copies("a", maxArgs+1)},
			want: fieldErr("args", fmt.Sprintf("has %d entries, at most %d are allowed", maxArgs+1, maxArgs))},
		{name: "arg too long", req: jobRequest{Args: []string{"ok", strings.Repeat("a", maxArgBytes+1)}}, want: fieldErr("args[1]", argMsg)},
		{name: "arg with NUL", req: jobRequest{Args: []string{"a\x00"}}, want: fieldErr("args[0]", argMsg)},
		{name: "arg not UTF-8", req: jobRequest{Args: []string{"\xff"}}, want: fieldErr("args[0]", argMsg)},

		{name: "too many env entries", req: jobRequest{Env: nKeys(maxEnv + 1)},
			want: fieldErr("env", fmt.Sprintf("has %d entries, at most %d are allowed", maxEnv+1, maxEnv))},
		{name: "env name empty", req: jobRequest{Env: map[string]string{"": "v"}}, want: fieldErr("env.", envMsg)},
		{name: "env name with =", req: jobRequest{Env: map[string]string{"A=B": "v"}}, want: fieldErr("env.A=B", envMsg)},
		{name: "env name with NUL", req: jobRequest{Env: map[string]string{"A\x00": "v"}}, want: fieldErr("env.A\uFFFD", envMsg)},
		{name: "env name not UTF-8", req: jobRequest{Env: map[string]string{"\xff": "v"}}, want: fieldErr("env.\uFFFD", envMsg)},
		{name: "env value with NUL", req: jobRequest{Env: map[string]string{"A": "\x00"}}, want: fieldErr("env.A", envMsg)},
		{name: "env value not UTF-8", req: jobRequest{Env: map[string]string{"A": "\xff"}}, want: fieldErr("env.A", envMsg)},
		{name: "env entry too long", req: jobRequest{Env: map[string]string{"A": strings.Repeat("v", maxEnvBytes)}}, want: fieldErr("env.A", envMsg)},

		{name: "stdin twice", req: jobRequest{Stdin: ptr("a"), StdinBase64: ptr("YQ==")},
			want: fieldErr("stdin_base64", "send either stdin or stdin_base64, not both")},
		{name: "stdin_base64 not base64", req: jobRequest{StdinBase64: ptr("a*")}, want: fieldErr("stdin_base64", "is not valid base64")},
		{name: "stdin too long", req: jobRequest{Stdin: ptr(strings.Repeat("x", maxStdinBytes+1))}, want: fieldErr("stdin", tooLargeStdin)},
		{name: "stdin_base64 too long", req: jobRequest{StdinBase64: ptr(base64.StdEncoding.EncodeToString(make([]byte, maxStdinBytes+1)))},
			want: fieldErr("stdin", tooLargeStdin)},

		{name: "too many params", req: jobRequest{Function: "add", Params: rawParams(copies("1", maxParams+1)...)},
			want: fieldErr("params", fmt.Sprintf("has %d entries, at most %d are allowed", maxParams+1, maxParams))},
		{name: "param true", req: jobRequest{Function: "add", Params: rawParams(`1`, `true`)}, want: fieldErr("params[1]", paramMsg)},
		{name: "param null", req: jobRequest{Function: "add", Params: rawParams(`null`, `1`)}, want: fieldErr("params[0]", paramMsg)},
		{name: "param array", req: jobRequest{Function: "add", Params: rawParams(`[1]`, `1`)}, want: fieldErr("params[0]", paramMsg)},
		{name: "param object", req: jobRequest{Function: "add", Params: rawParams(`{"a":1}`, `1`)}, want: fieldErr("params[0]", paramMsg)},
		{name: "param blank", req: jobRequest{Function: "add", Params: rawParams(` `, `1`)}, want: fieldErr("params[0]", paramMsg)},
		{name: "param string with NUL", req: jobRequest{Function: "add", Params: rawParams(`"1\u0000"`, `1`)}, want: fieldErr("params[0]", paramMsg)},

		{name: "timeout_ms zero", req: jobRequest{TimeoutMS: ptr(0)}, want: fieldErr("timeout_ms", timeoutMsg)},
		{name: "timeout_ms over the tier's", req: jobRequest{TimeoutMS: ptr(tier.MaxTimeoutMS + 1)}, want: fieldErr("timeout_ms", timeoutMsg)},
		{name: "memory_limit_mb negative", req: jobRequest{MemoryLimitMB: ptr(-1)}, want: fieldErr("memory_limit_mb", memoryMsg)},
		{name: "memory_limit_mb over the tier's", req: jobRequest{MemoryLimitMB: ptr(tier.MaxMemoryMB + 1)}, want: fieldErr("memory_limit_mb", memoryMsg)},
		{name: "max_output_bytes zero", req: jobRequest{MaxOutputBytes: ptr(0)}, want: fieldErr("max_output_bytes", outputMsg)},
		{name: "max_output_bytes over the tier's", req: jobRequest{MaxOutputBytes: ptr(tier.MaxOutputBytes + 1)}, want: fieldErr("max_output_bytes", outputMsg)},

		{name: "webhook_url too long", req: jobRequest{WebhookURL: ptr("https://1.1.1.1/" + strings.Repeat("a", maxWebhookURL))},
			want: fieldErr("webhook_url", fmt.Sprintf("is longer than %d bytes", maxWebhookURL))},
		{name: "webhook_url with NUL", req: jobRequest{WebhookURL: ptr("https://1.1.1.1/\x00")}, want: fieldErr("webhook_url", "must be UTF-8 without NUL")},
		{name: "webhook_url relative", req: jobRequest{WebhookURL: ptr("/hook")}, want: fieldErr("webhook_url", "not an absolute URL")},
		{name: "webhook_url over http", req: jobRequest{WebhookURL: ptr("http://1.1.1.1/")}, want: fieldErr("webhook_url", "use https (http is not allowed here)")},
		{name: "webhook_url of another scheme", req: jobRequest{WebhookURL: ptr("ftp://1.1.1.1/")}, want: fieldErr("webhook_url", `scheme "ftp"`)},
		{name: "webhook_url with credentials", req: jobRequest{WebhookURL: ptr("https://u:p@1.1.1.1/")}, want: fieldErr("webhook_url", "credentials in the URL")},
		{name: "webhook_url of a private address", req: jobRequest{WebhookURL: ptr("https://10.0.0.1/")}, want: fieldErr("webhook_url", notAllowed("10.0.0.1"))},

		{name: "too many metadata keys", req: jobRequest{Metadata: nKeys(maxMetadata + 1)},
			want: fieldErr("metadata", fmt.Sprintf("has %d keys, at most %d are allowed", maxMetadata+1, maxMetadata))},
		{name: "metadata key empty", req: jobRequest{Metadata: map[string]string{"": "v"}}, want: fieldErr("metadata.", metadataMsg)},
		{name: "metadata key too long", req: jobRequest{Metadata: map[string]string{strings.Repeat("k", maxMetadataKey+1): "v"}},
			want: fieldErr("metadata."+strings.Repeat("k", maxMetadataKey+1), metadataMsg)},
		{name: "metadata key with NUL", req: jobRequest{Metadata: map[string]string{"k\x00": "v"}}, want: fieldErr("metadata.k\uFFFD", metadataMsg)},
		{name: "metadata value too long", req: jobRequest{Metadata: map[string]string{"k": strings.Repeat("v", maxMetadataValue+1)}},
			want: fieldErr("metadata.k", metadataMsg)},
		{name: "metadata value not UTF-8", req: jobRequest{Metadata: map[string]string{"k": "\xff"}}, want: fieldErr("metadata.k", metadataMsg)},

		{name: "too many preopens", req: jobRequest{Preopens: copies("/d", maxPreopens+1)},
			want: fieldErr("preopens", fmt.Sprintf("has %d entries, at most %d are allowed", maxPreopens+1, maxPreopens))},
		{name: "preopen empty", req: jobRequest{Preopens: []string{"/data", ""}}, want: fieldErr("preopens[1]", "is empty")},
		{name: "preopen with ..", req: jobRequest{Preopens: []string{"a/../b"}}, want: fieldErr("preopens[0]", `must not contain ".."`)},
		{name: "preopen named twice", req: jobRequest{Preopens: []string{"data", "/data/"}}, want: fieldErr("preopens[1]", "names the directory /data again")},
		{name: "too many patterns", req: jobRequest{Collect: copies("/out/*", 65)}, want: fieldErr("collect", "has 65 patterns, at most 64 are allowed")},
		{name: "pattern relative", req: jobRequest{Collect: []string{"/ok", "out.txt"}}, want: fieldErr("collect[1]", "must be absolute (start with /)")},
		{name: "file mode unknown", req: jobRequest{Files: []fileRequest{{Path: "/a", Mode: "rx"}}}, want: fieldErr("files[0].mode", "must be ro or rw")},
		{name: "file path relative", req: jobRequest{Files: []fileRequest{{Path: "a"}}}, want: fieldErr("files[0].path", "must be absolute (start with /)")},
		{name: "file given twice", req: jobRequest{Files: []fileRequest{{Path: "/a"}, {Path: "/a"}}}, want: fieldErr("files[1].path", "/a is given twice")},
		{name: "file under no preopen", req: jobRequest{Preopens: []string{"/data", "/tmp"}, Files: []fileRequest{{Path: "/etc/x"}}},
			want: fieldErr("files[0].path", "/etc/x is under none of the preopens (/data, /tmp)")},
		{name: "file that is another's directory", req: jobRequest{Files: []fileRequest{{Path: "/a/b/c"}, {Path: "/a"}}},
			want: fieldErr("files", "/a is a file and the directory of /a/b/c")},

		{name: "the default function of a module without _start", req: jobRequest{ModuleID: "reactor"},
			want: fieldErr("function", "the module does not export _start (it is not a WASI command); name one of its exported functions")},
		{name: "a function not exported", req: jobRequest{Function: "sub"}, want: fieldErr("function", `the module does not export a function "sub"`)},
		{name: "an export that is not a function", req: jobRequest{Function: "memory"}, want: fieldErr("function", `the module does not export a function "memory"`)},
		{name: "params for _start", req: jobRequest{Params: rawParams(`1`)},
			want: fieldErr("params", "are passed to exported functions, not to _start; use args for a WASI command")},
		{name: "too few params", req: jobRequest{Function: "add", Params: rawParams(`1`)}, want: fieldErr("params", "add takes 2 params, got 1")},
		{name: "too many params for the function", req: jobRequest{Function: "add", Params: rawParams(`1`, `2`, `3`)},
			want: fieldErr("params", "add takes 2 params, got 3")},

		{name: "every invalid field at once, in order",
			req: jobRequest{ModuleID: "nope", Args: []string{"\x00"}, Env: map[string]string{"=": ""}, Stdin: ptr(""), StdinBase64: ptr(""),
				Params: rawParams(`true`), TimeoutMS: ptr(0), MemoryLimitMB: ptr(0), MaxOutputBytes: ptr(0), WebhookURL: ptr("x"),
				Metadata: map[string]string{"": ""}, Preopens: []string{""}, Collect: []string{""}, Files: []fileRequest{{Path: ""}}},
			want: []apperr.FieldError{
				{Field: "module_id", Message: "is not a module ID"},
				{Field: "args[0]", Message: argMsg},
				{Field: "env.=", Message: envMsg},
				{Field: "stdin_base64", Message: "send either stdin or stdin_base64, not both"},
				{Field: "params[0]", Message: paramMsg},
				{Field: "timeout_ms", Message: timeoutMsg},
				{Field: "memory_limit_mb", Message: memoryMsg},
				{Field: "max_output_bytes", Message: outputMsg},
				{Field: "webhook_url", Message: "not an absolute URL"},
				{Field: "metadata.", Message: metadataMsg},
				{Field: "preopens[0]", Message: "is empty"},
				{Field: "collect[0]", Message: "must be absolute (start with /)"},
				{Field: "files[0].path", Message: "is empty"},
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := b.build(context.Background(), t, tt.req)
			e := apperr.As(err)
			require.NotNil(t, e, "%v", err)
			require.Equal(t, apperr.Invalid, e.Code)
			require.Equal(t, tt.want, e.Fields)
		})
	}
}

// Files over the tier's max_input_bytes are input_too_large, once the
// request is otherwise valid.
func TestBuildJobRefusesTooLargeInputs(t *testing.T) {
	t.Parallel()
	b := setupBuildJob(t)
	limit := b.p.Tier.MaxInputBytes
	files := []fileRequest{{Path: "/a", Content: strings.Repeat("a", int(limit))}, {Path: "/b", Content: "b"}}

	_, err := b.build(context.Background(), t, jobRequest{Files: files})
	e := apperr.As(err)
	require.NotNil(t, e, "%v", err)
	require.Equal(t, apperr.InputTooLarge, e.Code)
	require.Equal(t, fmt.Sprintf("the request's files take %d bytes; the basic tier's max_input_bytes is %d", limit+1, limit), e.Detail)

	_, err = b.build(context.Background(), t, jobRequest{Files: files, TimeoutMS: ptr(0)})
	e = apperr.As(err)
	require.NotNil(t, e, "%v", err)
	require.Equal(t, apperr.Invalid, e.Code, "an invalid field is reported first")
	require.Equal(t, "timeout_ms", e.Fields[0].Field)
}

// In a batch, the verdicts on the webhook URLs checked together are used:
// the URL is not checked again.
func TestBuildJobUsesTheBatchsWebhookVerdicts(t *testing.T) {
	t.Parallel()
	b := setupBuildJob(t)
	refused := fmt.Errorf("%w: the verdict", webhook.ErrForbidden)
	ctx := context.WithValue(context.Background(), checkedWebhooksKey{},
		map[string]error{"https://checked.invalid/": nil, "https://1.1.1.1/": refused})

	j, err := b.build(ctx, t, jobRequest{WebhookURL: ptr("https://checked.invalid/")})
	require.NoError(t, err, "a name that cannot resolve was allowed by the batch's verdict")
	require.Equal(t, ptr("https://checked.invalid/"), j.WebhookURL)

	_, err = b.build(ctx, t, jobRequest{WebhookURL: ptr("https://1.1.1.1/")})
	require.Equal(t, fieldErr("webhook_url", "the verdict"), apperr.As(err).Fields)
}
