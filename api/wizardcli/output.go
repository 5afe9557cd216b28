package wizardcli

import (
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/schollz/progressbar/v3"
	"go.yaml.in/yaml/v3"
)

// table is rows for -o table; the value itself is printed for json and yaml.
type table struct {
	header []string
	rows   [][]string
}

func (t *table) add(cells ...string) { t.rows = append(t.rows, cells) }

// print writes v as -o asks: JSON (indented), YAML (from the JSON, so the
// field names are the API's), or the table.
func (a *app) print(v any, t *table) error {
	w := a.io.Stdout
	switch a.output {
	case "json":
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "yaml":
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		var generic any
		if err := json.Unmarshal(b, &generic); err != nil {
			return err
		}
		enc := yaml.NewEncoder(w)
		enc.SetIndent(2)
		if err := enc.Encode(generic); err != nil {
			return err
		}
		return enc.Close()
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	if len(t.header) > 0 {
		_, _ = fmt.Fprintln(tw, strings.Join(t.header, "\t"))
	}
	for _, r := range t.rows {
		_, _ = fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

func ts(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return t.Local().Format("2006-01-02 15:04:05")
}

func ptrTime(t *time.Time) string {
	if t == nil {
		return "-"
	}
	return ts(*t)
}

func ptrInt[T int | int64](v *T) string {
	if v == nil {
		return "-"
	}
	return fmt.Sprint(*v)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func bytesHuman(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// progress returns a progress bar of total bytes on stderr when stderr is
// a terminal, and nil otherwise (a nil bar's methods are not called).
func (a *app) progress(total int64, what string) *progressbar.ProgressBar {
	if !a.io.terminal(a.io.Stderr) || a.output != "table" {
		return nil
	}
	return progressbar.NewOptions64(total,
		progressbar.OptionSetWriter(a.io.Stderr),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowBytes(true),
		progressbar.OptionClearOnFinish(),
		progressbar.OptionThrottle(65*time.Millisecond),
		progressbar.OptionSetWidth(30),
		progressbar.OptionEnableColorCodes(a.io.colour(a.io.Stderr)),
	)
}

// progressFunc adapts a bar to the SDK's progress callbacks.
func progressFunc(bar *progressbar.ProgressBar) func(int) {
	if bar == nil {
		return nil
	}
	return func(n int) { _ = bar.Add(n) }
}

// barWriter counts bytes written into a bar; nil bar: io.Discard.
func barWriter(bar *progressbar.ProgressBar) io.Writer {
	if bar == nil {
		return io.Discard
	}
	return bar
}
