package wizardcli

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/wasmwizard/wasmwizard/api/client"
)

func (a *app) jobsCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "jobs", Aliases: []string{"job"}, Short: "List, show, cancel and follow jobs",
		Example: "  wizard jobs list --status failed\n  wizard jobs logs JOB_ID --follow"}
	var f client.JobFilter
	var after, before string
	list := &cobra.Command{
		Use: "list", Short: "List jobs, newest first", Args: cobra.NoArgs,
		Example: "  wizard jobs list --status succeeded --module MODULE_ID --limit 20",
		RunE: func(cmd *cobra.Command, _ []string) error {
			for _, x := range []struct {
				s string
				t *time.Time
			}{{after, &f.CreatedAfter}, {before, &f.CreatedBefore}} {
				if x.s != "" {
					t, err := time.Parse(time.RFC3339, x.s)
					if err != nil {
						return usagef("%q: want an RFC 3339 time such as 2026-01-02T15:04:05Z", x.s)
					}
					*x.t = t
				}
			}
			p, err := fetch(a, func(c *client.Client) (*client.Page[client.Job], error) { return c.ListJobs(cmd.Context(), f) })
			if err != nil {
				return err
			}
			t := &table{header: []string{"ID", "MODULE", "STATUS", "EXIT", "RUN", "CREATED"}}
			for _, j := range p.Data {
				run := "-"
				if j.Usage.RunMS != nil {
					run = fmt.Sprintf("%d ms", *j.Usage.RunMS)
				}
				t.add(j.ID, j.ModuleID, a.statusText(j.Status), ptrInt(j.ExitCode), run, ts(j.CreatedAt))
			}
			return printPage(a, p, t)
		},
	}
	listFlags(list, &f.ListOptions)
	list.Flags().StringVar(&f.Status, "status", "", "queued, running, succeeded, failed, timed_out or cancelled")
	list.Flags().StringVar(&f.ModuleID, "module", "", "only this module's jobs")
	list.Flags().StringVar(&after, "created-after", "", "RFC 3339 time")
	list.Flags().StringVar(&before, "created-before", "", "RFC 3339 time")

	get := showCmd(a, "get JOB_ID", "Show a job", "  wizard jobs get JOB_ID -o yaml",
		(*client.Client).GetJob, a.jobTable)
	wait := &cobra.Command{
		Use: "wait JOB_ID", Short: "Wait for a job to finish and show it; exits like wizard run", Args: cobra.ExactArgs(1),
		Example: "  wizard run app.wasm --detach   # prints the job ID\n  wizard jobs wait JOB_ID",
		RunE: func(cmd *cobra.Command, args []string) error {
			j, err := fetch(a, func(c *client.Client) (*client.Job, error) { return c.Wait(cmd.Context(), args[0]) })
			if err != nil {
				return err
			}
			if err := a.print(j, a.jobTable(j)); err != nil {
				return err
			}
			return a.jobExit(j)
		},
	}
	cancel := showCmd(a, "cancel JOB_ID", "Cancel a queued or running job", "  wizard jobs cancel JOB_ID",
		(*client.Client).CancelJob, a.jobTable)
	events := showCmd(a, "events JOB_ID", "Show a job's audit trail", "  wizard jobs events JOB_ID",
		(*client.Client).JobEvents, eventTable)
	deliveries := showCmd(a, "deliveries JOB_ID", "Show a job's webhook delivery and its attempts", "  wizard jobs deliveries JOB_ID -o json",
		(*client.Client).JobDeliveries, deliveryTable)
	var follow bool
	logs := &cobra.Command{
		Use: "logs JOB_ID", Short: "Print a job's stdout and stderr (--follow: live, until it ends)", Args: cobra.ExactArgs(1),
		Example: "  wizard jobs logs JOB_ID\n  wizard jobs logs JOB_ID --follow",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			if follow {
				_, err := a.follow(cmd.Context(), c, args[0])
				return err
			}
			j, err := c.GetJob(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			a.printOutputs(j)
			return nil
		},
	}
	logs.Flags().BoolVarP(&follow, "follow", "f", false, "stream the output as the guest writes it")
	var out string
	artifacts := &cobra.Command{
		Use: "artifacts JOB_ID [PATH]", Short: "List a job's artifacts, or download them into --out", Args: cobra.RangeArgs(1, 2),
		Example: "  wizard jobs artifacts JOB_ID\n  wizard jobs artifacts JOB_ID --out results/\n  wizard jobs artifacts JOB_ID /out/a.wav --out .",
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			list, err := c.ListArtifacts(cmd.Context(), args[0])
			if err != nil {
				return err
			}
			if len(args) == 2 {
				var only []client.Artifact
				for _, x := range list {
					if x.Path == args[1] {
						only = append(only, x)
					}
				}
				if len(only) == 0 {
					return exitWith(ExitFailure, fmt.Errorf("job %s has no artifact %s", args[0], args[1]))
				}
				list = only
			}
			if out != "" {
				return a.downloadArtifacts(cmd.Context(), c, args[0], list, out)
			}
			t := &table{header: []string{"PATH", "SIZE", "SHA256"}}
			for _, x := range list {
				t.add(x.Path, bytesHuman(x.SizeBytes), x.SHA256)
			}
			return a.print(list, t)
		},
	}
	artifacts.Flags().StringVar(&out, "out", "", "download into this directory (guest paths below it)")
	cmd.AddCommand(list, get, wait, cancel, events, deliveries, logs, artifacts)
	return cmd
}

// eventTable lists a job's audit trail, one event a row.
func eventTable(evs []client.Event) *table {
	t := &table{header: []string{"TIME", "ACTION", "ACTOR", "DATA"}}
	for _, e := range evs {
		var kv []string
		for k, v := range e.Data {
			kv = append(kv, fmt.Sprintf("%s=%v", k, v))
		}
		t.add(ts(e.CreatedAt), e.Action, e.Actor, strings.Join(sortStrings(kv), " "))
	}
	return t
}

// deliveryTable lists webhook deliveries, one attempt a row (a delivery
// not yet tried: one row of dashes).
func deliveryTable(ds []client.Delivery) *table {
	t := &table{header: []string{"DELIVERY", "EVENT", "STATUS", "ATTEMPT", "HTTP", "ERROR", "AT"}}
	for _, d := range ds {
		for _, at := range d.Attempts {
			e := "-"
			if at.Error != nil {
				e = *at.Error
			}
			t.add(d.ID, d.EventType, d.Status, fmt.Sprint(at.Attempt), ptrInt(at.StatusCode), e, ts(at.CreatedAt))
		}
		if len(d.Attempts) == 0 {
			t.add(d.ID, d.EventType, d.Status, "-", "-", "-", "-")
		}
	}
	return t
}

func sortStrings(s []string) []string {
	for i := 1; i < len(s); i++ {
		for j := i; j > 0 && s[j] < s[j-1]; j-- {
			s[j], s[j-1] = s[j-1], s[j]
		}
	}
	return s
}

func (a *app) statusText(s string) string {
	if !a.io.colour(a.io.Stdout) {
		return s
	}
	switch s {
	case client.StatusSucceeded:
		return "\x1b[32m" + s + "\x1b[0m"
	case client.StatusFailed, client.StatusTimedOut:
		return "\x1b[31m" + s + "\x1b[0m"
	case client.StatusCancelled:
		return "\x1b[33m" + s + "\x1b[0m"
	}
	return s
}

func (a *app) jobTable(j *client.Job) *table {
	t := &table{}
	t.add("ID:", j.ID)
	t.add("Module:", j.ModuleID)
	t.add("Function:", j.Function)
	t.add("Status:", a.statusText(j.Status))
	t.add("Exit code:", ptrInt(j.ExitCode))
	if j.Error != nil {
		t.add("Error:", j.Error.Code+": "+j.Error.Message)
	}
	t.add("Attempts:", fmt.Sprint(j.Attempts))
	t.add("Limits:", fmt.Sprintf("%d ms, %d MiB, %s of output", j.Limits.TimeoutMS, j.Limits.MemoryLimitMB, bytesHuman(int64(j.Limits.MaxOutputBytes))))
	t.add("Queued/run:", fmt.Sprintf("%s ms / %s ms", ptrInt(j.Usage.QueueMS), ptrInt(j.Usage.RunMS)))
	for _, x := range j.Artifacts {
		t.add("Artifact:", fmt.Sprintf("%s (%s)", x.Path, bytesHuman(x.SizeBytes)))
	}
	t.add("Created:", ts(j.CreatedAt))
	t.add("Finished:", ptrTime(j.FinishedAt))
	if j.Stdout != nil || j.StdoutBase64 != nil {
		t.add("Stdout:", fmt.Sprintf("%d bytes (wizard jobs logs %s)", len(decodeOutput(j.Stdout, j.StdoutBase64)), j.ID))
	}
	return t
}

// printOutputs writes a finished job's outputs to stdout and stderr.
func (a *app) printOutputs(j *client.Job) {
	_, _ = a.io.Stdout.Write(decodeOutput(j.Stdout, j.StdoutBase64))
	_, _ = a.io.Stderr.Write(decodeOutput(j.Stderr, j.StderrBase64))
	a.truncationNotes(j)
}

func (a *app) truncationNotes(j *client.Job) {
	if j.StdoutTruncated {
		a.notef("stdout was cut at %d bytes (max_output_bytes)", j.Limits.MaxOutputBytes)
	}
	if j.StderrTruncated {
		a.notef("stderr was cut at %d bytes (max_output_bytes)", j.Limits.MaxOutputBytes)
	}
}

// downloadArtifacts writes artifacts under dir, each at its guest path
// (/out/a.wav → dir/out/a.wav). The paths come from the server, so they
// are checked before anything is downloaded: one that would leave dir
// (`/../x`) refuses the whole download. The files are created through an
// os.Root of dir, so not even a symbolic link already inside dir leads a
// write out of it. Each file's SHA-256 is checked against the listing.
func (a *app) downloadArtifacts(ctx context.Context, c *client.Client, id string, list []client.Artifact, dir string) error {
	rels := make([]string, len(list))
	for i, x := range list {
		rel := filepath.FromSlash(strings.TrimLeft(x.Path, "/"))
		if !filepath.IsLocal(rel) {
			return exitWith(ExitPlatform, fmt.Errorf("artifact path %q leaves the output directory; nothing written", x.Path))
		}
		rels[i] = rel
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return err
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer func() { _ = root.Close() }()
	for i, x := range list {
		if err := a.downloadArtifact(ctx, c, id, x, root, rels[i]); err != nil {
			return exitWith(ExitPlatform, fmt.Errorf("download %s: %w", x.Path, err))
		}
	}
	if a.output == "table" && len(list) > 0 {
		a.notef("%d artifact(s) written under %s", len(list), dir)
	}
	return nil
}

// downloadArtifact writes one artifact at rel under root: into rel +
// ".partial" first, renamed to rel once all its bytes have come and match
// their SHA-256, so a failed download leaves no file that looks whole.
func (a *app) downloadArtifact(ctx context.Context, c *client.Client, id string, x client.Artifact, root *os.Root, rel string) error {
	if d := filepath.Dir(rel); d != "." {
		if err := root.MkdirAll(d, 0o750); err != nil {
			return err
		}
	}
	d, err := c.DownloadArtifact(ctx, id, x.Path)
	if err != nil {
		return err
	}
	defer func() { _ = d.Close() }()
	partial := rel + ".partial"
	f, err := root.Create(partial)
	if err != nil {
		return err
	}
	bar := a.progress(x.SizeBytes, filepath.Base(rel))
	sum := sha256.New()
	_, err = io.Copy(io.MultiWriter(f, sum, barWriter(bar)), d)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if bar != nil {
		_ = bar.Finish()
	}
	if err == nil && x.SHA256 != "" && hex.EncodeToString(sum.Sum(nil)) != x.SHA256 {
		err = fmt.Errorf("the bytes' SHA-256 is %x, the listing's %s", sum.Sum(nil), x.SHA256)
	}
	if err == nil {
		err = root.Rename(partial, rel)
	}
	if err != nil {
		_ = root.Remove(partial)
	}
	return err
}
