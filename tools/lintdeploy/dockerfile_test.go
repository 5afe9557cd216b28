package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// repoFile reads a file of the repository this tool checks.
func repoFile(t *testing.T, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func failures(results []result) []string {
	var out []string
	for _, r := range results {
		if !r.ok {
			out = append(out, r.msg)
		}
	}
	return out
}

func TestBuildKitLint(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	for _, name := range []string{"Dockerfile.api", "Dockerfile.worker"} {
		var out bytes.Buffer
		bad, err := buildkitLintFile(ctx, &out, name, []byte(repoFile(t, name)))
		if err != nil || bad {
			t.Errorf("%s: bad=%v err=%v\n%s", name, bad, err, out.String())
		}
	}
	for _, tc := range []struct{ name, dockerfile, rule string }{
		{"casing", "FROM golang:1.26 as build\nRUN true\n", "FromAsCasing"},
		{"maintainer", "FROM scratch\nMAINTAINER someone\n", "MaintainerDeprecated"},
		{"shell-form entrypoint", "FROM scratch\nENTRYPOINT /bin/app serve\n", "JSONArgsRecommended"},
		{"undefined variable", "FROM scratch\nCOPY $NOWHERE /x\n", "UndefinedVar"},
		{"syntax error", "FROM scratch\nNOTAKEYWORD x\n", "NOTAKEYWORD"},
	} {
		var out bytes.Buffer
		bad, err := buildkitLintFile(ctx, &out, "Dockerfile", []byte(tc.dockerfile))
		if err != nil && !strings.Contains(err.Error(), tc.rule) {
			t.Errorf("%s: %v", tc.name, err)
			continue
		}
		if err == nil && (!bad || !strings.Contains(out.String(), tc.rule)) {
			t.Errorf("%s: bad=%v, want a %s finding in:\n%s", tc.name, bad, tc.rule, out.String())
		}
	}
}

func TestDockerfilePolicyPassesTheRepositorysDockerfiles(t *testing.T) {
	t.Parallel()
	gv := goModVersion([]byte(repoFile(t, "go.mod")))
	if gv == "" {
		t.Fatal("no go version in go.mod")
	}
	for _, comp := range []string{"api", "worker"} {
		file := "Dockerfile." + comp
		results := dockerfilePolicy(file, repoFile(t, file), comp, gv)
		if f := failures(results); len(f) > 0 {
			t.Errorf("%s: %q", file, f)
		}
		if len(results) < 20 {
			t.Errorf("%s: only %d checks", file, len(results))
		}
	}
}

// Each policy rule refuses a Dockerfile that breaks it.
func TestDockerfilePolicyRefuses(t *testing.T) {
	t.Parallel()
	api, worker := repoFile(t, "Dockerfile.api"), repoFile(t, "Dockerfile.worker")
	runtimeStage := "FROM ${RUNTIME_IMAGE}\n"
	for _, tc := range []struct {
		name     string
		comp     string
		old, new string // the change to the repository's Dockerfile
		want     string // in the failing check's message
	}{
		{"builder image", "api", "golang:${GO_VERSION}-bookworm AS build", "golang:${GO_VERSION}-alpine AS build", "multi-stage: golang"},
		{"builder on the target platform", "api", "FROM --platform=$BUILDPLATFORM golang", "FROM golang", "multi-stage: golang"},
		{"another Go than go.mod's", "api", "ARG GO_VERSION=1.26", "ARG GO_VERSION=1.25", "builder Go 1.26 matches go.mod"},
		{"runtime with a shell", "api", "static-debian12:nonroot", "base-debian12:nonroot", "runtime defaults to distroless static nonroot"},
		{"runtime as root", "api", "static-debian12:nonroot", "static-debian12:latest", "runtime defaults to distroless static nonroot"},
		{"final stage not the runtime", "api", runtimeStage, runtimeStage + "FROM alpine:3\n", "final stage is the runtime image"},
		{"no cached download layer", "api", "COPY go.mod go.sum ./\n", "", "'go mod download' cached before the sources"},
		{"sources before the download", "api", "COPY go.mod go.sum ./\nRUN go mod download && go mod verify\n\nCOPY . .\n",
			"COPY . .\nCOPY go.mod go.sum ./\nRUN go mod download && go mod verify\n", "'go mod download' cached before the sources"},
		{"cgo", "api", "CGO_ENABLED=0 ", "", "static build: CGO_ENABLED=0"},
		{"no -trimpath", "api", "go build -trimpath", "go build", "go build -trimpath"},
		{"another package", "api", "-o /out/wasmwizard-api ./api", "-o /out/wasmwizard-api ./worker", "builds ./api into /out/wasmwizard-api"},
		{"no version stamp", "api", "-X github.com/wasmwizard/wasmwizard/api/app.Version=${VERSION}", "", "stamps the version like the Makefile"},
		{"a stamp of another package", "worker", "wasmwizard/worker/app.Version", "wasmwizard/api/app.Version", "stamps the version like the Makefile"},
		{"binary elsewhere", "api", "COPY --from=build /out/wasmwizard-api /usr/local/bin/wasmwizard-api",
			"COPY --from=build /out/wasmwizard-api /wasmwizard-api", "only the wasmwizard-api binary is copied into the runtime"},
		{"more copied into the runtime", "api", "COPY --from=build /out/wasmwizard-api /usr/local/bin/wasmwizard-api\n",
			"COPY --from=build /out/wasmwizard-api /usr/local/bin/wasmwizard-api\nCOPY --from=build /src /src\n", "runtime stage has 2 COPY/ADD instructions, expected 1"},
		{"an ADD into the runtime", "worker", "VOLUME [", "ADD https://example.com/x /x\nVOLUME [", "runtime stage has 3 COPY/ADD instructions, expected 2"},
		{"user by name", "api", "USER 65532:65532", "USER nonroot", "numeric non-root USER 65532:65532"},
		{"root", "api", "USER 65532:65532", "USER 0:0", "numeric non-root USER 65532:65532"},
		{"user only in the builder", "api", "USER 65532:65532\n", "", "numeric non-root USER 65532:65532"},
		{"another port", "api", "EXPOSE 8080", "EXPOSE 80", "EXPOSE 8080"},
		{"shell-form entrypoint", "api", `ENTRYPOINT ["/usr/local/bin/wasmwizard-api"]`, "ENTRYPOINT /usr/local/bin/wasmwizard-api", "exec-form ENTRYPOINT"},
		{"no default command", "api", `CMD ["serve"]`, "", `CMD ["serve"]`},
		{"no title", "api", "org.opencontainers.image.title=", "org.opencontainers.image.name=", "OCI label org.opencontainers.image.title"},
		{"no description", "api", "org.opencontainers.image.description=", "description=", "OCI label org.opencontainers.image.description"},
		{"no source", "api", "org.opencontainers.image.source=", "source=", "OCI label org.opencontainers.image.source"},
		{"no version", "api", "org.opencontainers.image.version=", "version=", "OCI label org.opencontainers.image.version"},
		{"no revision", "api", "org.opencontainers.image.revision=", "revision=", "OCI label org.opencontainers.image.revision"},
		{"no creation time", "api", "org.opencontainers.image.created=", "created=", "OCI label org.opencontainers.image.created"},
		{"a healthcheck", "api", `CMD ["serve"]`, `CMD ["serve"]` + "\nHEALTHCHECK CMD wget -q localhost:8080/healthz", "HEALTHCHECK cannot run in a distroless image"},
		{"data dir owned by root", "worker", "COPY --from=build --chown=65532:65532 /out/data", "COPY --from=build /out/data", "data dir owned by 65532 copied in"},
		{"no data dir setting", "worker", `WIZARD_DATA_DIR="/var/lib/wasmwizard"`, `WIZARD_DATA_DIR="/data"`, "WIZARD_DATA_DIR=/var/lib/wasmwizard"},
		{"no volume", "worker", `VOLUME ["/var/lib/wasmwizard"]`, "", "VOLUME /var/lib/wasmwizard"},
	} {
		text := api
		if tc.comp == "worker" {
			text = worker
		}
		if !strings.Contains(text, tc.old) {
			t.Errorf("%s: Dockerfile.%s has no %q", tc.name, tc.comp, tc.old)
			continue
		}
		text = strings.Replace(text, tc.old, tc.new, 1)
		f := failures(dockerfilePolicy("Dockerfile."+tc.comp, text, tc.comp, "1.26"))
		found := false
		for _, msg := range f {
			found = found || strings.Contains(msg, tc.want)
		}
		if !found {
			t.Errorf("%s: no failed check says %q; failures: %q", tc.name, tc.want, f)
		}
	}
}

func TestGoModVersion(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"module x\n\ngo 1.26.8\n": "1.26",
		"module x\ngo 1.26\n":     "1.26",
		"module x\n":              "",
	} {
		if got := goModVersion([]byte(in)); got != want {
			t.Errorf("goModVersion(%q) = %q, want %q", in, got, want)
		}
	}
}
