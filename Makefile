# Drover's build. Two commands matter on a fresh machine:
#   make run    the embedded default (dispatch + runners + collector, one process)
#   make test   every test: unit, embedded end-to-end, AWS emulator, Lambda
#               bootstraps, Terraform apply/destroy against moto_server
SHELL := /bin/bash
GO    ?= go
ARCHS ?= amd64 arm64
LAMBDA_FUNCS := dispatch collect runner
TEST_TIMEOUT ?= 45m
# -race on every test run, as the style guide asks; CI=true adds -v-free
# summaries only (go test prints its normal output either way).
TEST_FLAGS ?= -race -count=1 -timeout $(TEST_TIMEOUT)

.PHONY: run install build lambda test test-short lint tools chromium screenshots bench bench-moto bench-peers clean fmt

GOBIN_DIR := $(or $(shell $(GO) env GOBIN),$(shell $(GO) env GOPATH)/bin)

# Installs the drover CLI (so that `drover submit` works in another shell,
# with $(GOBIN_DIR) on PATH) and runs the embedded default.
run: install
	$(GOBIN_DIR)/drover dev

install:
	@$(GO) install ./cmd/drover
	@echo "installed $(GOBIN_DIR)/drover"

build: lambda
	$(GO) build -trimpath -o bin/drover ./cmd/drover

# One bootstrap per function and architecture, for provided.al2023, zipped
# as build/lambda/<arch>/<function>.zip.
lambda:
	@set -e; for arch in $(ARCHS); do for fn in $(LAMBDA_FUNCS); do \
	  out=build/lambda/$$arch; mkdir -p $$out/$$fn; \
	  CGO_ENABLED=0 GOOS=linux GOARCH=$$arch $(GO) build -trimpath -tags lambda.norpc \
	    -ldflags='-s -w' -o $$out/$$fn/bootstrap ./functions/$$fn; \
	  (cd $$out/$$fn && rm -f ../$$fn.zip && $(GO) run $(CURDIR)/internal/zipdir bootstrap ../$$fn.zip); \
	  echo "built $$out/$$fn.zip"; \
	done; done

test: tools
	$(GO) vet ./...
	$(GO) test $(TEST_FLAGS) ./...

# Everything that needs no emulator or Terraform.
test-short:
	$(GO) test $(TEST_FLAGS) -short ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	terraform fmt -check -recursive infra/terraform

fmt:
	gofmt -w $$(git ls-files '*.go')
	terraform fmt -recursive infra/terraform

# The AWS emulator and Terraform the suite drives: moto_server and the aws
# CLI from the machine image, Terraform's AWS provider from the mirror at
# /opt/tf-plugins (or TF_PLUGIN_DIR). A missing tool fails make test with
# one line; DROVER_SKIP_AWS=1 is the explicit opt-out that skips the AWS
# emulator and Terraform tests instead.
tools: chromium
	@if [ "$${DROVER_SKIP_AWS:-}" = 1 ]; then \
	  echo "make test: DROVER_SKIP_AWS=1: tests that need moto_server or terraform are skipped"; \
	else \
	  command -v moto_server >/dev/null || { echo "make test: moto_server (moto[server] 5.x) is not on PATH; install it, or set DROVER_SKIP_AWS=1 to skip the AWS tests"; exit 1; }; \
	  command -v terraform >/dev/null || { echo "make test: terraform >= 1.6 is not on PATH; install it, or set DROVER_SKIP_AWS=1 to skip the AWS tests"; exit 1; }; \
	fi

# The dashboard's browser test (TestDashboard) drives Debian's chromium,
# headless; install it when it is missing (CI runs as root).
chromium:
	@command -v chromium >/dev/null || command -v chromium-browser >/dev/null || { \
	  echo "make test: installing chromium for the dashboard's browser test"; \
	  apt-get update -qq && apt-get install -y -qq chromium >/dev/null || { echo "make test: could not install chromium (apt-get install chromium as root)"; exit 1; }; }

# Re-takes the dashboard screenshots in docs/screenshots from the browser test.
screenshots: chromium
	DROVER_SCREENSHOTS=$(CURDIR)/docs/screenshots $(GO) test -count=1 -run 'TestDashboard$$|TestDashboardGroups$$' ./cmd/drover

bench:
	$(GO) run ./cmd/drover bench

# Drover's embedded default (durable and in memory) beside asynq (Redis,
# AOF everysec) and River (PostgreSQL, SQLite) on the same no-op workload,
# in one run, one table (bench/peers: its own Go module, never a
# dependency of Drover). Needs redis-server and postgresql installed.
bench-peers:
	bench/peers/run.sh

# The same bench against a moto_server it starts, with the raw AWS SDK's
# ceilings and the AWS requests per task.
bench-moto:
	$(GO) build -o bin/drover ./cmd/drover
	$(GO) run ./internal/awstest/cmd/withmoto bin/drover bench --backend env --sdk --tasks 1000 --batch 50 --clients 2 --rates "" --no-burn --count-requests

clean:
	rm -rf bin build .drover

-include infra/terraform/terraform.mk
-include internal/reliability/reliability.mk
