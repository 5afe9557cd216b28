# Wasm Wizard. `make run` sets up and runs the platform; `make test` runs the
# whole test suite. Both start (or install) Postgres and Redis when missing,
# and `make test` installs the Chromium the console's browser tests drive.

SHELL        := /bin/bash
GO           ?= go
VERSION      ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS      := -s -w -X github.com/wasmwizard/wasmwizard/api/app.Version=$(VERSION) -X github.com/wasmwizard/wasmwizard/worker/app.Version=$(VERSION) -X github.com/wasmwizard/wasmwizard/api/wizardcli.Version=$(VERSION)
TOOLS        := $(CURDIR)/.cache/tools
GOLANGCI     := $(TOOLS)/golangci-lint
GOLANGCI_VER := v2.15.0
TEST_FLAGS   ?= -race -count=1 -timeout 20m
FUZZTIME     ?= 10s

.PHONY: all build run test test-short check lint fmt tidy fixtures fuzz console-screenshots bench bench-quick bench-sandbox bench-pickup chaos chaos-short scaling-sim lint-deploy deps clean help


all: build

help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## build bin/wasmwizard-api, bin/wasmwizard-worker and bin/wizard (the CLI)
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/wasmwizard-api ./api
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/wasmwizard-worker ./worker
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/wizard ./api/cmd/wizard

deps: ## start (or install) Postgres and Redis
	bash scripts/deps.sh

run: build ## set up and run the platform locally (Ctrl-C stops it)
	bash scripts/run.sh

test: ## run the whole test suite (with -race) against real Postgres and Redis
	bash scripts/deps.sh
	bash scripts/promtool.sh
	$(GO) test $(TEST_FLAGS) ./...

test-short: ## the suite without -race
	bash scripts/deps.sh
	bash scripts/promtool.sh
	$(GO) test -count=1 ./...

bench: build ## the platform against its floors (real binaries, local Postgres/Redis); rewrites the table in docs/BENCHMARKS.md
	bash scripts/deps.sh
	$(GO) run ./tools/bench

bench-quick: build ## the same, smaller (under 2 minutes)
	bash scripts/deps.sh
	$(GO) run ./tools/bench -quick

bench-sandbox: ## sandbox micro-benchmarks against uninterrupted wazero (results: docs/BENCHMARKS.md)
	$(GO) test -run '^$$' -bench . -benchtime 2s ./worker/sandbox/

bench-pickup: ## idle submit-with-wait latency and idle Redis traffic, doorbell on/off by poll interval (results: docs/BENCHMARKS.md)
	bash scripts/deps.sh
	$(GO) test -run '^$$' -bench IdleSubmitWait -benchtime 200x -timeout 60m ./platformtest/

chaos: build ## fault-injection suite: real binaries, private Postgres and Redis, faults under load
	bash scripts/deps.sh
	$(GO) run ./tools/chaos

chaos-short: build ## the chaos suite's short form (CI)
	bash scripts/deps.sh
	$(GO) run ./tools/chaos -short

console-screenshots: ## run the console's browser tests and write their screenshots to docs/console/
	bash scripts/deps.sh
	$(GO) test -count=1 -run '^TestConsole$$' ./platformtest/ -args -console.screenshots=$(CURDIR)/docs/console

scaling-sim: ## the autoscaling simulation with the 2,000-job burst; rewrites docs/scaling-timeline.svg (make test runs a 300-job burst)
	bash scripts/deps.sh
	$(GO) test -count=1 -timeout 15m -v -run TestScalingSimulation ./tools/scalesim/ \
		-scalesim.burst=2000 -scalesim.svg=$(CURDIR)/docs/scaling-timeline.svg

fuzz: ## run every fuzz target for FUZZTIME each (scripts/fuzz.sh)
	GO=$(GO) bash scripts/fuzz.sh $(FUZZTIME)

$(GOLANGCI):
	GOBIN=$(TOOLS) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VER)

lint: $(GOLANGCI) ## golangci-lint
	$(GOLANGCI) run ./...

check: $(GOLANGCI) ## gofmt, go vet, golangci-lint, go mod tidy clean (the root module and tools/lintdeploy)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(GOLANGCI) run ./...
	$(GO) mod tidy -diff
	cd tools/lintdeploy && export GOWORK=off && $(GO) vet ./... && $(GOLANGCI) run ./... && $(GO) mod tidy -diff

fmt: ## gofmt the tree
	gofmt -w $$(git ls-files '*.go')

fixtures: ## rebuild the WebAssembly test fixtures from their sources
	bash scripts/fixtures.sh

lint-deploy: ## lint the Dockerfiles and the Helm chart (tools/lintdeploy, after its own tests)
	bash scripts/lint-deploy.sh

clean:
	rm -rf bin data
