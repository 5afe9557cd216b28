package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"regexp"
	"strings"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// offlineResolver answers base-image lookups with a minimal config instead of
// contacting a registry.
type offlineResolver struct{}

func (offlineResolver) ResolveImageConfig(_ context.Context, ref string, opt sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	p := ocispecs.Platform{OS: "linux", Architecture: "amd64"}
	if opt.ImageOpt != nil && opt.ImageOpt.Platform != nil {
		p = *opt.ImageOpt.Platform
	}
	img := ocispecs.Image{Platform: p, Config: ocispecs.ImageConfig{
		Env: []string{"PATH=/usr/local/go/bin:/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "GOPATH=/go"},
	}}
	dt, err := json.Marshal(img)
	if err != nil {
		return "", "", nil, err
	}
	return ref, digest.FromBytes(dt), dt, nil
}

// buildkitLint runs BuildKit's Dockerfile linter (the rules behind `docker
// build --check`) on each file, without a Docker engine or network access,
// and writes what it found to w. It reports whether any file has warnings
// or errors; the error is for a file it could not read or lint.
func buildkitLint(ctx context.Context, w io.Writer, files ...string) (bad bool, err error) {
	for _, fn := range files {
		dt, err := os.ReadFile(fn) //nolint:gosec // the repository's Dockerfiles
		if err != nil {
			return bad, err
		}
		fileBad, err := buildkitLintFile(ctx, w, fn, dt)
		if err != nil {
			return bad, err
		}
		bad = bad || fileBad
	}
	return bad, nil
}

func buildkitLintFile(ctx context.Context, w io.Writer, fn string, dt []byte) (bad bool, err error) {
	linux := ocispecs.Platform{OS: "linux", Architecture: "amd64"}
	sm := llb.NewSourceMap(nil, fn, "Dockerfile", dt)
	sm.Definition = &llb.Definition{}
	opt := dockerfile2llb.ConvertOpt{
		Config: dockerui.Config{
			BuildPlatforms:  []ocispecs.Platform{linux},
			TargetPlatforms: []ocispecs.Platform{linux},
		},
		SourceMap:    sm,
		MetaResolver: offlineResolver{},
	}
	res, err := dockerfile2llb.DockerfileLint(ctx, dt, opt)
	if err != nil {
		return false, fmt.Errorf("%s: %w", fn, err)
	}
	if res.Error != nil {
		bad = true
		fmt.Fprintf(w, "%s: ERROR: ", fn)
		res.PrintErrorTo(w, nil)
	}
	if len(res.Warnings) > 0 {
		bad = true
		fmt.Fprintf(w, "%s: %d warning(s):", fn, len(res.Warnings))
		if err := res.PrintTo(w, nil); err != nil {
			return bad, err
		}
	}
	if !bad {
		fmt.Fprintf(w, "%s: ok (BuildKit lint: no warnings)\n", fn)
	}
	return bad, nil
}

// A check's outcome: ok or not, and the line that says what was checked.
type result struct {
	ok  bool
	msg string
}

// dockerfilePolicy checks the project's rules for the Dockerfile of
// component comp ("api" or "worker"), text, named file: a distroless
// nonroot runtime, a numeric non-root USER, an exec-form ENTRYPOINT with
// CMD ["serve"], EXPOSE, OCI labels, a cached `go mod download` layer,
// CGO_ENABLED=0 -trimpath, the worker's data directory as a VOLUME, and the
// builder's Go version matching goVersion (go.mod's, "1.26"; "" skips it).
// Each rule matches lines (as grep -E does) of the whole file or, for the
// runtime's rules, of the final stage (from the last FROM on).
func dockerfilePolicy(file, text, comp, goVersion string) []result {
	var out []result
	final := finalStage(text)
	expect := func(what, re string, inFinal bool) {
		t := text
		if inFinal {
			t = final
		}
		if regexp.MustCompile("(?m)" + re).MatchString(t) {
			out = append(out, result{true, file + ": " + what})
		} else {
			out = append(out, result{false, fmt.Sprintf("%s: %s (expected /%s/)", file, what, re)})
		}
	}
	port := "8080"
	if comp == "worker" {
		port = "8081"
	}
	expect("multi-stage: golang:${GO_VERSION}-bookworm builder", `^FROM --platform=\$BUILDPLATFORM golang:\$\{GO_VERSION\}-bookworm AS build$`, false)
	if goVersion != "" {
		expect("builder Go "+goVersion+" matches go.mod", "^ARG GO_VERSION="+strings.ReplaceAll(goVersion, ".", `\.`)+"$", false)
	}
	expect("runtime defaults to distroless static nonroot", `^ARG RUNTIME_IMAGE=gcr\.io/distroless/static-debian12:nonroot$`, false)
	expect("final stage is the runtime image", `^FROM \$\{RUNTIME_IMAGE\}$`, true)
	out = append(out, expectOrder(file, text, "go.mod/go.sum copied and 'go mod download' cached before the sources",
		`^COPY go\.mod go\.sum \./$`, `^RUN go mod download`, `^COPY \. \.$`))
	expect("static build: CGO_ENABLED=0", `CGO_ENABLED=0`, false)
	expect("go build -trimpath", `go build -trimpath`, false)
	expect("builds ./"+comp+" into /out/wasmwizard-"+comp, "-o /out/wasmwizard-"+comp+` \./`+comp+"$", false)
	expect("stamps the version like the Makefile", `-X github\.com/wasmwizard/wasmwizard/`+comp+`/app\.Version=\$\{VERSION\}`, false)
	expect("only the wasmwizard-"+comp+" binary is copied into the runtime",
		"^COPY --from=build /out/wasmwizard-"+comp+" /usr/local/bin/wasmwizard-"+comp+"$", true)
	want := 1
	if comp == "worker" {
		want = 2
	}
	if n := copies(final); n == want {
		out = append(out, result{true, fmt.Sprintf("%s: runtime stage has %d COPY instruction(s)", file, n)})
	} else {
		out = append(out, result{false, fmt.Sprintf("%s: runtime stage has %d COPY/ADD instructions, expected %d", file, n, want)})
	}
	expect("numeric non-root USER 65532:65532", `^USER 65532:65532$`, true)
	expect("EXPOSE "+port, "^EXPOSE "+port+"$", true)
	expect("exec-form ENTRYPOINT", `^ENTRYPOINT \["/usr/local/bin/wasmwizard-`+comp+`"\]$`, true)
	expect(`CMD ["serve"]`, `^CMD \["serve"\]$`, true)
	for _, label := range []string{"title", "description", "source", "version", "revision", "created"} {
		expect("OCI label org.opencontainers.image."+label, `org\.opencontainers\.image\.`+label+"=", true)
	}
	if regexp.MustCompile(`(?m)^HEALTHCHECK[[:space:]]+CMD`).MatchString(text) {
		out = append(out, result{false, file + ": HEALTHCHECK cannot run in a distroless image (no shell)"})
	} else {
		out = append(out, result{true, file + ": no HEALTHCHECK (distroless; Kubernetes probes instead)"})
	}
	if comp == "worker" {
		expect("data dir owned by 65532 copied in", `^COPY --from=build --chown=65532:65532 /out/data /var/lib/wasmwizard$`, true)
		expect("WIZARD_DATA_DIR=/var/lib/wasmwizard", `WIZARD_DATA_DIR="/var/lib/wasmwizard"`, true)
		expect("VOLUME /var/lib/wasmwizard", `^VOLUME \["/var/lib/wasmwizard"\]$`, true)
	}
	return out
}

// expectOrder checks that each regular expression matches a line, and that
// their first matches come in this order.
func expectOrder(file, text, what string, res ...string) result {
	lines := strings.Split(text, "\n")
	last := -1
	for _, re := range res {
		rx := regexp.MustCompile(re)
		n := -1
		for i, line := range lines {
			if rx.MatchString(line) {
				n = i
				break
			}
		}
		if n < 0 || n <= last {
			return result{false, fmt.Sprintf("%s: %s (/%s/ missing or out of order)", file, what, re)}
		}
		last = n
	}
	return result{true, file + ": " + what}
}

var fromLine = regexp.MustCompile(`^FROM[[:space:]]`)

// finalStage returns the lines of a Dockerfile from its last FROM on.
func finalStage(text string) string {
	lines := strings.SplitAfter(text, "\n")
	start := 0
	for i, line := range lines {
		if fromLine.MatchString(line) {
			start = i
		}
	}
	return strings.Join(lines[start:], "")
}

// copies counts the COPY and ADD instructions of a stage.
func copies(stage string) int {
	n := 0
	rx := regexp.MustCompile(`^(COPY|ADD)[[:space:]]`)
	for line := range strings.SplitSeq(stage, "\n") {
		if rx.MatchString(line) {
			n++
		}
	}
	return n
}

// goModVersion returns the major.minor Go version of a go.mod ("1.26"), or
// "" if it names none.
func goModVersion(gomod []byte) string {
	for line := range bytes.SplitSeq(gomod, []byte("\n")) {
		f := strings.Fields(string(line))
		if len(f) >= 2 && f[0] == "go" {
			v := strings.Split(f[1], ".")
			if len(v) < 2 {
				return v[0] + "."
			}
			return v[0] + "." + v[1]
		}
	}
	return ""
}
