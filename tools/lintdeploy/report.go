package main

import (
	"fmt"
	"io"
	"strings"
)

// reporter writes the checks' outcomes, step by step, and remembers the
// failures for the summary.
type reporter struct {
	w        io.Writer
	failures []string
}

func (r *reporter) step(s string) { fmt.Fprintf(r.w, "\n==> %s\n", s) }

func (r *reporter) ok(s string) { fmt.Fprintf(r.w, "    ok    %s\n", s) }

func (r *reporter) fail(s string) {
	fmt.Fprintf(r.w, "    FAIL  %s\n", s)
	r.failures = append(r.failures, s)
}

func (r *reporter) report(results ...result) {
	for _, res := range results {
		if res.ok {
			r.ok(res.msg)
		} else {
			r.fail(res.msg)
		}
	}
}

// tool reports a check that a tool made, writing out: what the tool wrote
// (on failure only, unless always), then err, which fails the check like bad
// does.
func (r *reporter) tool(out string, bad bool, err error, always bool, ok, fail string) {
	if err != nil {
		out += err.Error() + "\n"
	}
	failed := bad || err != nil
	if always || failed {
		r.indent(out)
	}
	if failed {
		r.fail(fail)
	} else {
		r.ok(ok)
	}
}

// indent writes a tool's output under the step, without its trailing
// newlines.
func (r *reporter) indent(out string) {
	for line := range strings.SplitSeq(strings.TrimRight(out, "\n"), "\n") {
		fmt.Fprintf(r.w, "          %s\n", line)
	}
}
