# Paddock: `make dev` runs the portal, `make test` runs every test.
SHELL := /bin/bash
GO ?= go
export GOFLAGS ?= -mod=mod

.PHONY: dev test test-e2e test-short generate lint kube-tools bench build

## dev: run the portal with demo data, a private PostgreSQL and the simulated cluster
dev:
	$(GO) run ./cmd/portal dev

## build: build bin/portal
build:
	CGO_ENABLED=0 $(GO) build -trimpath -o bin/portal ./cmd/portal

## test: every test — unit, store and web on real PostgreSQL, provisioner on a real kube-apiserver, browser journeys
test: kube-tools
	$(GO) test -count=1 -timeout 20m ./...

## test-short: the tests that need neither the API server nor Chromium
test-short:
	$(GO) test -count=1 -short ./...

## test-e2e: the browser journeys in headless Chromium
test-e2e:
	$(GO) test -count=1 -timeout 10m ./internal/e2e/...

## kube-tools: build kube-apiserver, etcd and friends into ~/.cache/paddock (once)
kube-tools:
	@if [ -x hack/kube-tools.sh ]; then hack/kube-tools.sh >/dev/null; fi

## generate: regenerate templ views
generate:
	$(GO) tool templ generate

## lint: formatting, vet, and generated code is current
lint:
	@test -z "$$(gofmt -l cmd internal migrations static templates)" || { gofmt -l cmd internal migrations static templates; echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet ./...
	$(GO) tool templ generate >/dev/null 2>&1
	@git diff --exit-code -- '*_templ.go' || { echo "generated templ code is stale: run make generate and commit"; exit 1; }
