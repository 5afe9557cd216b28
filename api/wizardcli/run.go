package wizardcli

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/wasmwizard/wasmwizard/api/client"
)

type runFlags struct {
	files, dirs, collect, env []string
	stdin, out, function      string
	timeout                   time.Duration
	memory                    int
	detach, deterministic     bool
	name, idempotencyKey      string
}

func (a *app) runCmd() *cobra.Command {
	var f runFlags
	cmd := &cobra.Command{
		Use:   "run MODULE.wasm|MODULE_ID [flags] [-- ARGS...]",
		Short: "Run a module on the platform: live output, files in and out, its exit code",
		Long: `run submits a job and behaves like running the module locally: stdout and
stderr arrive as the guest writes them, artifacts are written into --out, and
wizard exits with the guest's exit code (124 timed out, 125 platform error,
134 trap or memory limit, 137 cancelled; see docs/CLI.md).

A .wasm file is uploaded only when the platform does not have its bytes
(its SHA-256 is looked up first). Ctrl-C cancels the job.`,
		Example: `  wizard run hello.wasm
  wizard run echo.wasm --env GREETING=hi --stdin - -- hello world
  wizard run flite.wasm --file text.txt:/in/text.txt --collect '/out/*.wav' --out . -- -f /in/text.txt -o /out/a.wav
  wizard run 01a21c90-5fe6-7a89-a466-cda6b504227f --timeout 2s --memory 64
  wizard run app.wasm --detach   # prints the job ID; see wizard jobs wait`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.run(cmd, args[0], args[1:], &f)
		},
	}
	fl := cmd.Flags()
	fl.StringArrayVar(&f.files, "file", nil, "LOCAL:/GUEST: an input file (repeatable)")
	fl.StringArrayVar(&f.dirs, "dir", nil, "LOCALDIR:/GUEST: every file below a directory (repeatable)")
	fl.StringArrayVar(&f.collect, "collect", nil, "GLOB of guest files to keep as artifacts, e.g. '/out/**' (repeatable)")
	fl.StringVar(&f.out, "out", "", "write the artifacts into this directory")
	fl.StringArrayVarP(&f.env, "env", "e", nil, "K=V: an environment variable (repeatable)")
	fl.StringVar(&f.stdin, "stdin", "", "standard input: - (this process's) or a file")
	fl.DurationVar(&f.timeout, "timeout", 0, "wall-clock limit, e.g. 5s (default: the tier's)")
	fl.IntVar(&f.memory, "memory", 0, "memory limit in MiB (default: the tier's)")
	fl.StringVar(&f.function, "invoke", "", "call this exported function instead of _start")
	fl.BoolVar(&f.deterministic, "deterministic", false, "fixed clock and random seed")
	fl.BoolVarP(&f.detach, "detach", "d", false, "submit, print the job ID and exit")
	fl.StringVar(&f.name, "name", "", "the module's name when uploaded (default: the file's name)")
	fl.StringVar(&f.idempotencyKey, "idempotency-key", "", "Idempotency-Key of the submit (default: a new one)")
	return cmd
}

func (a *app) run(cmd *cobra.Command, target string, args []string, f *runFlags) error {
	ctx := cmd.Context()
	req, uploads, err := a.jobRequest(f, args)
	if err != nil {
		return err
	}
	c, err := a.client()
	if err != nil {
		return err
	}
	moduleID, err := a.moduleFor(cmd, c, target, f.name)
	if err != nil {
		return exitWith(ExitPlatform, err)
	}
	req.ModuleID = moduleID
	job, err := c.Submit(ctx, req, &client.SubmitOptions{IdempotencyKey: f.idempotencyKey, Uploads: uploads})
	if err != nil {
		return exitWith(ExitPlatform, fmt.Errorf("submit: %w", err))
	}
	if f.detach {
		if a.output == "table" {
			_, _ = fmt.Fprintln(a.io.Stdout, job.ID)
			return nil
		}
		return a.print(job, nil)
	}
	final, err := a.follow(ctx, c, job.ID)
	if err != nil {
		if ctx.Err() != nil { // Ctrl-C: cancel the job, then report it
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			defer cancel()
			a.notef("cancelling job %s", job.ID)
			_, cerr := c.CancelJob(cctx, job.ID)
			if cerr == nil {
				return exitWith(ExitCancelled, nil)
			}
			if !client.IsCode(cerr, client.CodeConflict) {
				return exitWith(ExitPlatform, cerr)
			}
			j, gerr := c.GetJob(cctx, job.ID)
			if gerr == nil {
				return a.jobExit(j) // it ended before the cancel
			}
			err = gerr
		}
		return exitWith(ExitPlatform, err)
	}
	if f.out != "" && len(final.Artifacts) > 0 {
		if err := a.downloadArtifacts(ctx, c, final.ID, final.Artifacts, f.out); err != nil {
			return exitWith(ExitPlatform, err)
		}
	}
	if final.ArtifactsTruncated {
		a.notef("not every collected file was kept (max_artifact_bytes)")
	}
	if a.output != "table" {
		if j, err := c.GetJob(ctx, final.ID); err == nil {
			final = j // with its outputs, which the stream sent as events
		}
		if err := a.print(final, nil); err != nil {
			return err
		}
	}
	return a.jobExit(final)
}

// follow prints a job's output as it comes and returns the finished job.
// An API without live output (GET /v1/jobs/{id}/stream answers 404 for a
// job that exists) is waited on instead, and the output printed at the end.
func (a *app) follow(ctx context.Context, c *client.Client, id string) (*client.Job, error) {
	stdout, stderr := a.io.Stdout, a.io.Stderr
	if a.output != "table" {
		stdout, stderr = io.Discard, io.Discard // the job is printed whole at the end
	}
	var streamErr error
	for ev, err := range c.Stream(ctx, id, nil) {
		if err != nil {
			streamErr = err
			break
		}
		switch ev.Type {
		case client.EventStdout:
			_, _ = stdout.Write(ev.Output)
		case client.EventStderr:
			_, _ = stderr.Write(ev.Output)
		case client.EventEnd:
			if a.output == "table" {
				a.truncationNotes(ev.Job)
			}
			return ev.Job, nil
		}
	}
	if streamErr == nil || ctx.Err() != nil {
		return nil, errors.Join(streamErr, ctx.Err())
	}
	if !client.IsCode(streamErr, client.CodeNotFound) {
		return nil, fmt.Errorf("live output of job %s: %w", id, streamErr)
	}
	// No stream route, or no such job: Wait tells which.
	j, err := c.Wait(ctx, id)
	if err != nil {
		return nil, err
	}
	if a.output == "table" {
		a.printOutputs(j)
	}
	return j, nil
}

// jobExit maps a finished job to wizard's exit code.
func (a *app) jobExit(j *client.Job) error {
	code := ""
	msg := ""
	if j.Error != nil {
		code, msg = j.Error.Code, j.Error.Message
	}
	switch {
	case j.Status == client.StatusSucceeded:
		return nil
	case code == "exit_nonzero" && j.ExitCode != nil:
		return exitWith(*j.ExitCode&0xff, nil)
	case j.Status == client.StatusTimedOut:
		return exitWith(ExitTimedOut, fmt.Errorf("job %s timed out after %d ms", j.ID, j.Limits.TimeoutMS))
	case j.Status == client.StatusCancelled:
		return exitWith(ExitCancelled, fmt.Errorf("job %s was cancelled", j.ID))
	}
	err := fmt.Errorf("job %s failed: %s: %s", j.ID, code, msg)
	switch code {
	case "trap", "memory_limit", "function_not_found", "invalid_params", "instantiate_failed":
		return exitWith(ExitTrap, err)
	}
	return exitWith(ExitPlatform, err)
}

// moduleFor returns the ID of the module target names: a file is uploaded
// unless the platform has its bytes; anything else is a module ID.
func (a *app) moduleFor(cmd *cobra.Command, c *client.Client, target, name string) (string, error) {
	if _, err := os.Stat(target); err != nil {
		if strings.HasSuffix(target, ".wasm") || strings.ContainsRune(target, os.PathSeparator) {
			return "", err
		}
		return target, nil // a module ID
	}
	m, _, err := a.ensureModule(cmd, c, target, name)
	if err != nil {
		return "", err
	}
	return m.ID, nil
}

func (a *app) ensureModule(cmd *cobra.Command, c *client.Client, file, name string) (*client.Module, bool, error) {
	wasm, err := os.ReadFile(file) //nolint:gosec // the module file the user named
	if err != nil {
		return nil, false, err
	}
	sum := sha256.Sum256(wasm)
	m, found, err := c.ModuleBySHA256(cmd.Context(), hex.EncodeToString(sum[:]))
	if err != nil || found {
		return m, false, err
	}
	if name == "" {
		name = strings.TrimSuffix(filepath.Base(file), ".wasm")
	}
	bar := a.progress(int64(len(wasm)), "upload "+filepath.Base(file))
	m, _, err = c.UploadModule(cmd.Context(), wasm, &client.UploadOptions{Name: name, Progress: progressFunc(bar)})
	if bar != nil {
		_ = bar.Finish()
	}
	return m, err == nil, err
}

// maxInline is the largest input a JSON request carries; larger inputs go
// as multipart parts.
const maxInline = 1 << 20

// jobRequest builds the request from the flags.
func (a *app) jobRequest(f *runFlags, args []string) (client.JobRequest, []client.Upload, error) {
	req := client.JobRequest{Args: args, Function: f.function, MemoryLimitMB: f.memory,
		Deterministic: f.deterministic, Collect: f.collect}
	if f.timeout < 0 || f.timeout > 0 && f.timeout < time.Millisecond {
		return req, nil, usagef("--timeout %v: want at least 1ms", f.timeout)
	}
	req.TimeoutMS = int(f.timeout.Milliseconds())
	for _, kv := range f.env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return req, nil, usagef("--env %q: want KEY=VALUE", kv)
		}
		if req.Env == nil {
			req.Env = map[string]string{}
		}
		req.Env[k] = v
	}
	if f.stdin != "" {
		var b []byte
		var err error
		if f.stdin == "-" {
			b, err = io.ReadAll(a.io.Stdin)
		} else {
			b, err = os.ReadFile(f.stdin)
		}
		if err != nil {
			return req, nil, usagef("--stdin: %v", err)
		}
		if utf8.Valid(b) {
			s := string(b)
			req.Stdin = &s
		} else {
			s := base64.StdEncoding.EncodeToString(b)
			req.StdinBase64 = &s
		}
	}
	var inputs []client.Upload
	for _, spec := range f.files {
		local, guest, err := splitMapping("--file", spec)
		if err != nil {
			return req, nil, err
		}
		b, err := os.ReadFile(local) //nolint:gosec // a file the user named with --file
		if err != nil {
			return req, nil, usagef("--file %s: %v", spec, err)
		}
		inputs = append(inputs, client.Upload{Path: guest, Content: b})
	}
	for _, spec := range f.dirs {
		local, guest, err := splitMapping("--dir", spec)
		if err != nil {
			return req, nil, err
		}
		err = filepath.WalkDir(local, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.Type().IsRegular() {
				return err
			}
			rel, err := filepath.Rel(local, p)
			if err != nil {
				return err
			}
			b, err := os.ReadFile(p) //nolint:gosec // a file under a directory the user named with --dir
			if err != nil {
				return err
			}
			inputs = append(inputs, client.Upload{Path: path.Join(guest, filepath.ToSlash(rel)), Content: b})
			return nil
		})
		if err != nil {
			return req, nil, usagef("--dir %s: %v", spec, err)
		}
	}
	total := 0
	for _, in := range inputs {
		total += len(in.Content)
	}
	if total > maxInline {
		return req, inputs, nil // multipart
	}
	for _, in := range inputs {
		file := client.File{Path: in.Path}
		if utf8.Valid(in.Content) {
			file.Content = string(in.Content)
		} else {
			file.Content, file.Encoding = base64.StdEncoding.EncodeToString(in.Content), "base64"
		}
		req.Files = append(req.Files, file)
	}
	return req, nil, nil
}

// splitMapping reads LOCAL:/GUEST (the guest path is absolute; the last
// ":/" splits, so local paths may hold colons).
func splitMapping(flag, spec string) (local, guest string, err error) {
	i := strings.LastIndex(spec, ":/")
	if i <= 0 {
		return "", "", usagef("%s %q: want LOCAL:/GUEST/PATH", flag, spec)
	}
	return spec[:i], path.Clean(spec[i+1:]), nil
}
