package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// tree makes files (name → content) under a new directory.
func tree(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func TestCheckContext(t *testing.T) {
	t.Parallel()
	files := map[string]string{
		"go.mod": "module x\n", "go.sum": "", "api/main.go": "package main\n",
		".git/HEAD": "ref\n", "docs/x.md": "# x\n", "bin/app": "binary",
	}
	require, forbid := []string{"go.mod", "go.sum", "api", "worker"}, []string{".git", "docs", "bin"}

	files[".dockerignore"] = ".git\ndocs\nbin\n"
	dir := tree(t, files)
	export := filepath.Join(t.TempDir(), "context")
	var out strings.Builder
	bad, err := checkContext(&out, dir, export, require, forbid)
	if err != nil || bad {
		t.Fatalf("bad=%v err=%v\n%s", bad, err, out.String())
	}
	for _, want := range []string{"4 files", "(3 patterns)", "note: required path worker does not exist yet"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("no %q in:\n%s", want, out.String())
		}
	}
	if _, err := os.Stat(filepath.Join(export, "api", "main.go")); err != nil {
		t.Error("the context was not exported:", err)
	}
	if _, err := os.Stat(filepath.Join(export, ".git")); err == nil {
		t.Error("an ignored path was exported")
	}

	for _, tc := range []struct{ ignore, want string }{
		{".git\ndocs\nbin\napi\n", "ERROR: api is excluded by .dockerignore but the image build needs it"},
		{".git\ndocs\nbin\n*.mod\n", "ERROR: go.mod is excluded by .dockerignore"},
		{"docs\nbin\n", "ERROR: .git is sent in the build context; add it to .dockerignore"},
		{".git\nbin\n", "ERROR: docs is sent in the build context"},
		{".git\ndocs\nbin\n!bin/app\n", "ERROR: bin is sent in the build context"},
		{"", "ERROR: .git is sent in the build context"},
	} {
		files[".dockerignore"] = tc.ignore
		var out strings.Builder
		bad, err := checkContext(&out, tree(t, files), "", require, forbid)
		if err != nil || !bad || !strings.Contains(out.String(), tc.want) {
			t.Errorf(".dockerignore %q: bad=%v err=%v, want %q in:\n%s", tc.ignore, bad, err, tc.want, out.String())
		}
	}
	files[".dockerignore"] = "[\n"
	if _, err := checkContext(&strings.Builder{}, tree(t, files), "", require, forbid); err == nil {
		t.Error("a broken pattern was accepted")
	}
}

func TestStampedBinary(t *testing.T) {
	t.Parallel()
	dir := tree(t, map[string]string{"stamped": "\x00lint-deploy-version-check\x00", "plain": "\x00dev\x00"})
	if ok, err := contains(filepath.Join(dir, "stamped"), "lint-deploy-version-check"); !ok || err != nil {
		t.Errorf("stamped: %v %v", ok, err)
	}
	if ok, err := contains(filepath.Join(dir, "plain"), "lint-deploy-version-check"); ok || err != nil {
		t.Errorf("plain: %v %v", ok, err)
	}
}

func TestHumanSize(t *testing.T) {
	t.Parallel()
	for n, want := range map[int64]string{
		512: "512", 4096: "4.0K", 1536: "1.5K", 1537: "1.6K", 10 * 1024: "10K", 15*1024*1024 + 1: "16M", 9<<30 + 1: "9.1G",
	} {
		if got := humanSize(n); got != want {
			t.Errorf("humanSize(%d) = %q, want %q", n, got, want)
		}
	}
}
