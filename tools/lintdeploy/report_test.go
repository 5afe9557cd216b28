package main

import (
	"errors"
	"strings"
	"testing"
)

func TestReporterTool(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		bad    bool
		err    error
		always bool
		want   string
		fails  int
	}{
		{name: "passes quietly", want: "    ok    fine\n"},
		{name: "passes, output shown", always: true, want: "          a\n          b\n    ok    fine\n"},
		{name: "fails", bad: true, want: "          a\n          b\n    FAIL  broken\n", fails: 1},
		{name: "cannot run", err: errors.New("no such file"), want: "          a\n          b\n          no such file\n    FAIL  broken\n", fails: 1},
	} {
		var out strings.Builder
		r := &reporter{w: &out}
		r.tool("a\nb\n", tc.bad, tc.err, tc.always, "fine", "broken")
		if out.String() != tc.want || len(r.failures) != tc.fails {
			t.Errorf("%s: wrote %q with %d failures, want %q with %d", tc.name, out.String(), len(r.failures), tc.want, tc.fails)
		}
	}
}
