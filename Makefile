# Paddock: `make dev` runs the portal, `make test` runs every test.
SHELL := /bin/bash
GO ?= go
export GOFLAGS ?= -mod=mod

.PHONY: dev test test-e2e test-short test-race fuzz test-load generate lint kube-tools bench build bench-provision bench-history bench-console

# The packages with concurrency (handlers, River workers, watchers, the
# portal process): make test runs their tests under the race detector.
RACE_PKGS := paddock/internal/store paddock/internal/provision paddock/internal/web paddock/cmd/portal
# How long each fuzz target runs beyond its seed corpus in make test.
FUZZTIME ?= 5s
# How long the load test runs in make test (make load: 60 s).
LOAD_TEST_DURATION ?= 20s

## dev: run the portal with demo data, a private PostgreSQL and the simulated cluster
dev:
	$(GO) run ./cmd/portal dev

## build: build bin/portal
build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/portal ./cmd/portal

## test: every test — unit, store and web on real PostgreSQL, provisioner on a real kube-apiserver, browser journeys;
## the packages with concurrency under the race detector; each fuzz target for $(FUZZTIME); the load test for $(LOAD_TEST_DURATION)
test: kube-tools
	$(GO) test -count=1 -timeout 20m $$($(GO) list ./... | grep -vxF $(addprefix -e ,$(RACE_PKGS)))
	$(MAKE) --no-print-directory test-race fuzz test-load

## test-race: the tests of the packages with concurrency, under the race detector
test-race: kube-tools
	$(GO) test -count=1 -race -timeout 30m $(RACE_PKGS)

## fuzz: each fuzz target (every func FuzzX in a _test.go, found afresh each time) for $(FUZZTIME) beyond its seed corpus;
## a target that fails only with Go 1.26's fuzztime deadline race and no failing input runs once more (hack/fuzz.sh)
fuzz:
	GO=$(GO) FUZZTIME=$(FUZZTIME) hack/fuzz.sh

## test-load: the load test (make load) for $(LOAD_TEST_DURATION)
test-load:
	PADDOCK_LOAD_TEST=1 PADDOCK_LOAD_DURATION=$(LOAD_TEST_DURATION) $(GO) test -count=1 -timeout 15m -run '^TestLoad$$' ./cmd/portal

## test-short: the tests that need neither the API server nor Chromium
test-short:
	$(GO) test -count=1 -short ./...

## test-e2e: the browser journeys in headless Chromium (one of them on a real kube-apiserver)
test-e2e: kube-tools
	$(GO) test -count=1 -timeout 10m ./internal/e2e/...

## kube-tools: build kube-apiserver, etcd and friends into ~/.cache/paddock (once)
kube-tools:
	@if [ -x hack/kube-tools.sh ]; then hack/kube-tools.sh >/dev/null; fi

## vendor-js: refresh static/vendor/novnc and static/vendor/xterm from npm, as pinned in hack/vendor-js/package-lock.json
.PHONY: vendor-js
vendor-js:
	hack/vendor-js.sh

## generate: regenerate templ views
generate:
	$(GO) tool templ generate

## lint: formatting, vet, and generated code is current
lint:
	@test -z "$$(gofmt -l cmd internal migrations static templates)" || { gofmt -l cmd internal migrations static templates; echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	$(GO) tool templ generate >/dev/null 2>&1
	@git diff --exit-code -- '*_templ.go' || { echo "generated templ code is stale: run make generate and commit"; exit 1; }

## bench-provision: submit latency, sustained submits, page latency at scale and portal memory on a real kube-apiserver (issue #9), each beside a baseline
bench-provision: kube-tools
	$(GO) run ./internal/bench/provision -out BENCHMARKS.md $(BENCH_PROVISION_ARGS)

## bench-history: seeds 1,000,000 requests into the database paddock_bench (once), then measures the history
## and insight pages and the CSV export through the real handler; writes its section of BENCHMARKS.md (issue #7)
bench-history:
	$(GO) run ./internal/bench/history $(BENCH_HISTORY_ARGS)

## bench-console: console throughput, serial echo latency and open time on a real kube-apiserver, through Paddock's
## bridge, through the aggregator without it, and by a direct websocket to the virt-api stand-in, in one run (issue 18);
## writes its section of BENCHMARKS.md
bench-console: kube-tools
	$(GO) run ./internal/bench/console -out BENCHMARKS.md $(BENCH_CONSOLE_ARGS)

bench: bench-provision bench-history bench-console

## load: 100 API clients for 60 s against `portal dev` on the simulated cluster, loopback only (issue #10); zero 5xx, nothing lost or duplicated;
## writes its figures into BENCHMARKS.md
.PHONY: load
load:
	PADDOCK_LOAD_TEST=1 PADDOCK_LOAD_OUT=$(CURDIR)/BENCHMARKS.md $(GO) test -count=1 -timeout 15m -run '^TestLoad$$' -v ./cmd/portal
bench: load
