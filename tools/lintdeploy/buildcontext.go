package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// checkContext walks dir like `docker build` does when it sends the build
// context: paths matched by its .dockerignore are left out. It writes the
// context's size to w, and an ERROR line for each path of require that is
// left out and each path of forbid that is sent; it reports whether there
// was one. With export set, the files sent are copied there. The error is
// for a .dockerignore or a tree it could not read.
func checkContext(w io.Writer, dir, export string, require, forbid []string) (bad bool, err error) {
	var patterns []string
	if f, err := os.Open(filepath.Join(dir, ".dockerignore")); err == nil { //nolint:gosec // the build context is the repository
		patterns, err = ignorefile.ReadAll(f)
		_ = f.Close()
		if err != nil {
			return false, err
		}
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		return false, fmt.Errorf(".dockerignore: %w", err)
	}
	included := map[string]bool{}
	var files, size int64
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(dir, path)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		skip, err := pm.MatchesOrParentMatches(rel)
		if err != nil {
			return err
		}
		if skip {
			if d.IsDir() && !pm.Exclusions() {
				return filepath.SkipDir
			}
			return nil
		}
		included[rel] = true
		for p := filepath.Dir(rel); p != "."; p = filepath.Dir(p) {
			included[filepath.ToSlash(p)] = true
		}
		if d.Type().IsRegular() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			files++
			size += info.Size()
			if export != "" {
				if err := copyFile(path, filepath.Join(export, rel), info.Mode()); err != nil {
					return err
				}
			}
		}
		return nil
	})
	if err != nil {
		return false, err
	}
	fmt.Fprintf(w, "build context %s: %d files, %.1f KiB after .dockerignore (%d patterns)\n", dir, files, float64(size)/1024, len(patterns))
	for _, p := range require {
		if _, err := os.Stat(filepath.Join(dir, p)); err != nil {
			fmt.Fprintf(w, "  note: required path %s does not exist yet\n", p)
			continue
		}
		if !included[p] {
			fmt.Fprintf(w, "  ERROR: %s is excluded by .dockerignore but the image build needs it\n", p)
			bad = true
		}
	}
	for _, p := range forbid {
		if included[p] {
			fmt.Fprintf(w, "  ERROR: %s is sent in the build context; add it to .dockerignore\n", p)
			bad = true
		}
	}
	return bad, nil
}

func copyFile(src, dst string, mode fs.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(dst), 0o750); err != nil {
		return err
	}
	in, err := os.Open(src) //nolint:gosec // a file of the build context
	if err != nil {
		return err
	}
	defer func() { _ = in.Close() }()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, mode.Perm()) //nolint:gosec // its copy under the export directory
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		_ = out.Close()
		return err
	}
	return out.Close()
}

// buildFromContext runs the Dockerfile's `go build` of component comp in
// the exported build context ctxDir, with a version stamp, into outDir. It
// returns the results to report and the build's output when it failed.
func buildFromContext(ctx context.Context, t *tools, ctxDir, outDir, comp string) ([]result, string) {
	const stamp = "lint-deploy-version-check"
	bin := filepath.Join(outDir, "wasmwizard-"+comp)
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath",
		"-ldflags=-s -w -X github.com/wasmwizard/wasmwizard/"+comp+"/app.Version="+stamp,
		"-o", bin, "./"+comp)
	cmd.Dir = ctxDir
	cmd.Env = append(t.goEnv(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH=amd64")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return []result{{false, "wasmwizard-" + comp + " does not build from the filtered build context"}}, string(out)
	}
	res := []result{{true, fmt.Sprintf("wasmwizard-%s builds from the filtered context (%s)", comp, diskUsage(bin))}}
	stamped, err := contains(bin, stamp)
	switch {
	case err != nil:
		return append(res, result{false, fmt.Sprintf("wasmwizard-%s: %v", comp, err)}), ""
	case stamped:
		res = append(res, result{true, "wasmwizard-" + comp + ": -X .../" + comp + "/app.Version is applied"})
	default:
		res = append(res, result{false, "wasmwizard-" + comp + ": -X github.com/wasmwizard/wasmwizard/" + comp + "/app.Version had no effect (variable renamed?)"})
	}
	return res, ""
}

// contains reports whether file holds the bytes of s.
func contains(file, s string) (bool, error) {
	b, err := os.ReadFile(file) //nolint:gosec // a binary this program built
	if err != nil {
		return false, err
	}
	return bytes.Contains(b, []byte(s)), nil
}

// diskUsage is the space file takes on disk, the way `du -h` writes it.
func diskUsage(file string) string {
	info, err := os.Stat(file) //nolint:gosec // a binary this program built
	if err != nil {
		return "?"
	}
	n := info.Size()
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		n = st.Blocks * 512
	}
	return humanSize(n)
}

// humanSize writes n bytes as du -h does: powers of 1024, one decimal below
// 10 of a unit, rounded up.
func humanSize(n int64) string {
	if n < 1024 {
		return fmt.Sprintf("%d", n)
	}
	v := float64(n)
	for _, unit := range []string{"K", "M", "G", "T"} {
		v /= 1024
		if v < 1024 || unit == "T" {
			if c := ceilTo(v, 10); c < 10 {
				return fmt.Sprintf("%.1f%s", c, unit)
			}
			return fmt.Sprintf("%d%s", int64(ceilTo(v, 1)), unit)
		}
	}
	return ""
}

// ceilTo rounds v up to a multiple of 1/per.
func ceilTo(v float64, per float64) float64 {
	x := v * per
	if x != float64(int64(x)) {
		x = float64(int64(x) + 1)
	}
	return x / per
}
