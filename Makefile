# Ferry's build, test and demo entry points. Every target that needs Ceph or
# libvirt headers installs them first (Debian 12) when they are missing.

GO        ?= go
TAGS      := pacific
GOFLAGS_T := -tags $(TAGS)
BIN       := bin/ferry
DEVENV    ?= .devenv
BENCH_OUT ?= bench.md

.PHONY: all build deps test test-short fuzz bench bench-wan demo devenv devenv-down vet lint clean package

all: build

deps:
	@bash .ci/install-deps.sh

build: deps
	$(GO) build $(GOFLAGS_T) -o $(BIN) ./cmd/ferry

vet: deps
	$(GO) vet $(GOFLAGS_T) ./...

# golangci-lint with .golangci.yml: the packages' import rules (depguard),
# errcheck, staticcheck, unused, govet. The pinned version is built into
# bin/ the first time.
GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT         := bin/golangci-lint-$(GOLANGCI_LINT_VERSION)

lint: deps $(GOLANGCI_LINT)
	$(GOLANGCI_LINT) run --build-tags $(TAGS) ./...

$(GOLANGCI_LINT):
	GOBIN=$(CURDIR)/bin/golangci-lint.tmp $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)
	mv bin/golangci-lint.tmp/golangci-lint $@
	rmdir bin/golangci-lint.tmp

# The full suite: lint, unit tests, the real two-site Ceph test bed, a bounded fuzz run.
test: deps lint vet
	$(GO) test $(GOFLAGS_T) -count=1 -timeout 40m ./...
	$(MAKE) --no-print-directory fuzz
	$(MAKE) --no-print-directory package
	bash packaging/test-package.sh

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzReader$$' -fuzztime 20s ./internal/rbddiff/

# Ferry vs rbd and the seed pipeline on the real test bed (~10 min): a Markdown report on
# stdout and in $(BENCH_OUT).
# Then the guest's frozen time for 1 and 4 disks (a real libvirtd and TCG guest), with its
# breakdown (freeze call, snapshots, thaw), in $(BENCH_FROZEN_OUT).
BENCH_FROZEN_OUT ?= bench-frozen.txt
bench: build
	$(GO) test $(GOFLAGS_T) -count=1 -run '^$$' -bench '^BenchmarkTable$$' -benchtime 1x -timeout 60m \
		./internal/bench/ -args -ferry-bin $(CURDIR)/$(BIN) -bench-big -bench-out $(CURDIR)/$(BENCH_OUT)
	$(GO) test $(GOFLAGS_T) -count=1 -run '^$$' -bench '^BenchmarkFrozenTime$$' -benchtime 7x -v -timeout 20m \
		./hooks/ > $(CURDIR)/$(BENCH_FROZEN_OUT) 2>&1 || { cat $(CURDIR)/$(BENCH_FROZEN_OUT); exit 1; }
	grep -E 'Benchmark|frozen' $(CURDIR)/$(BENCH_FROZEN_OUT)
	$(MAKE) --no-print-directory bench-wan

# Section W alone: ferry backup beside the seed pipeline across an emulated WAN link
# (0, 20, 100 ms RTT; 20 ms at 100 Mbit/s), in $(BENCH_WAN_OUT). BENCH_WAN_SIZE=67108864
# makes it a quick run (1 min).
BENCH_WAN_OUT  ?= bench-wan.md
BENCH_WAN_SIZE ?= 1073741824
bench-wan: build
	$(GO) test $(GOFLAGS_T) -count=1 -run '^$$' -bench '^BenchmarkWAN$$' -benchtime 1x -timeout 60m \
		./internal/bench/ -args -ferry-bin $(CURDIR)/$(BIN) -bench-size $(BENCH_WAN_SIZE) -bench-out $(CURDIR)/$(BENCH_WAN_OUT)

# The .deb (bin/ferry_VERSION_amd64.deb): binary, systemd units, example
# config, docs. nfpm runs as a library from its own module in packaging/nfpm.
DEB_VERSION ?= 0.1.0
package: build
	rm -f bin/ferry_*.deb
	$(GO) build -C packaging/nfpm -o $(CURDIR)/bin/nfpm-deb .
	bin/nfpm-deb -config packaging/nfpm.yaml -version $(DEB_VERSION) -out bin

demo: build
	bash packaging/demo.sh

devenv:
	@bash internal/testbed/devenv.sh up $(DEVENV)

devenv-down:
	@bash internal/testbed/devenv.sh down $(DEVENV)

clean:
	rm -rf bin
