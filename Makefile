# Ferry's build, test and demo entry points. Every target that needs Ceph or
# libvirt headers installs them first (Debian 12) when they are missing.

GO        ?= go
TAGS      := pacific
GOFLAGS_T := -tags $(TAGS)
BIN       := bin/ferry
DEVENV    ?= .devenv
BENCH_OUT ?= bench.md
# What ferry --version and ferry_build_info say: the package's version (from
# the changelog, DEB_VERSION below) and the commit.
FERRY_COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS_V     = -X github.com/ferry-dr/ferry/internal/buildinfo.version=$(DEB_VERSION) -X github.com/ferry-dr/ferry/internal/buildinfo.commit=$(FERRY_COMMIT)

.PHONY: all build deps test test-alerts check-metrics test-short fuzz fuzz-long bench bench-wan chaos demo devenv devenv-down vet lint clean package

all: build

deps:
	@bash .ci/install-deps.sh

build: deps
	$(GO) build $(GOFLAGS_T) -ldflags '$(LDFLAGS_V)' -o $(BIN) ./cmd/ferry

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

# The full suite: lint, the alert rules and the metrics, unit tests, the real two-site
# Ceph test bed, a bounded fuzz run.
test: deps lint vet test-alerts check-metrics
	$(GO) test $(GOFLAGS_T) -count=1 -timeout 40m ./...
	$(MAKE) --no-print-directory fuzz
	$(MAKE) --no-print-directory package
	bash packaging/test-package.sh
	bash packaging/test-walk.sh

# promtool comes from Debian's prometheus package (make deps installs it); without
# it these targets fail rather than skip.
PROMTOOL := promtool
need-promtool = @command -v $(PROMTOOL) >/dev/null || { echo "$(PROMTOOL) not found: install Debian's prometheus package (make deps)" >&2; exit 1; }

# The shipped alert rules: promtool checks them and runs their unit tests, one
# or more for every alert.
test-alerts: deps
	$(need-promtool)
	$(PROMTOOL) check rules packaging/prometheus/ferry-alerts.yml
	$(PROMTOOL) test rules packaging/prometheus/ferry-alerts_test.yml

# promtool check metrics over a real scrape of both daemons during backups on
# the test bed (TestMetrics), over each daemon's /metrics as its command serves
# them, and over the counters at start and ferry backup's textfile.
check-metrics: deps
	$(need-promtool)
	$(GO) test $(GOFLAGS_T) -count=1 -run '^(TestMetrics|TestDaemonMetricsOfItsRole|TestCountersStartAtZero|TestWriteTextfile)$$' \
		./consumer/ ./cmd/ferry/ ./internal/metrics/

# Every decoder of bus messages and diffs, PACKAGE:FUZZER, each fuzzed for
# FUZZTIME. make fuzz, in make test, gives each a count of inputs: a duration
# can fail a run with a bare "context deadline exceeded" and no crasher, a race
# in Go's fuzzing coordinator at the end of -fuzztime (go.dev/issue/75804,
# fixed in Go 1.27). make fuzz-long gives each 10 minutes; a failure there
# without an input written to testdata/fuzz is that race, not a finding.
FUZZ_TARGETS := \
	./internal/rbddiff/:FuzzReader \
	./internal/chunk/:FuzzPage \
	./internal/ferry/:FuzzRestoreJob \
	./internal/bus/:FuzzResult \
	./internal/ferry/:FuzzManifest \
	./internal/state/:FuzzDecode \
	./internal/feed/:FuzzDecode
FUZZTIME ?= 100000x

fuzz:
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "fuzz $${t##*:} in $${t%%:*} for $(FUZZTIME)"; \
		$(GO) test $(GOFLAGS_T) -timeout 0 -run '^$$' -fuzz "^$${t##*:}\$$" -fuzztime $(FUZZTIME) $${t%%:*}; \
	done

fuzz-long:
	$(MAKE) --no-print-directory fuzz FUZZTIME=10m

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
# (0, 20, 100 ms RTT; 20 ms at 100 Mbit/s), in $(BENCH_WAN_OUT): 9 min at 1 GiB.
# BENCH_WAN_SIZE=67108864 makes it a quick run (1 min).
BENCH_WAN_OUT  ?= bench-wan.md
BENCH_WAN_SIZE ?= 1073741824
bench-wan: build
	$(GO) test $(GOFLAGS_T) -count=1 -run '^$$' -bench '^BenchmarkWAN$$' -benchtime 1x -timeout 60m \
		./internal/bench/ -args -ferry-bin $(CURDIR)/$(BIN) -bench-size $(BENCH_WAN_SIZE) -bench-out $(CURDIR)/$(BENCH_WAN_OUT)

# The .deb (bin/ferry_VERSION_amd64.deb): binary, man pages, completions,
# systemd units, example config, docs. Its files are staged in $(DEB_STAGE):
# the binary is built apart from bin/ferry, as Debian builds one: PIE,
# stripped, the cgo parts with dpkg-buildflags' hardening flags. The man pages
# come from TestManPages, the completions from `ferry completion`. The
# version and the man pages' date come from packaging/deb/changelog. nfpm
# runs as a library from its own module in packaging/nfpm and takes the
# Depends from the binary's libraries (dpkg-shlibdeps).
DEB_CHANGELOG := packaging/deb/changelog
DEB_VERSION   ?= $(shell dpkg-parsechangelog -l $(DEB_CHANGELOG) -S Version)
DEB_DATE      := $(shell dpkg-parsechangelog -l $(DEB_CHANGELOG) -S Timestamp)
DEB_STAGE     := bin/deb
DEB_BUILDFLAGS := DEB_BUILD_MAINT_OPTIONS=hardening=+all dpkg-buildflags --get
package: deps
	rm -rf $(DEB_STAGE) bin/ferry_*.deb
	mkdir -p $(DEB_STAGE)/man $(DEB_STAGE)/completions $(DEB_STAGE)/doc
	CGO_CPPFLAGS="$$($(DEB_BUILDFLAGS) CPPFLAGS)" CGO_CFLAGS="$$($(DEB_BUILDFLAGS) CFLAGS)" \
		CGO_LDFLAGS="$$($(DEB_BUILDFLAGS) LDFLAGS)" \
		$(GO) build $(GOFLAGS_T) -trimpath -buildmode=pie -ldflags '-s -w $(LDFLAGS_V)' -o $(DEB_STAGE)/ferry ./cmd/ferry
	strip --remove-section=.comment --remove-section=.note $(DEB_STAGE)/ferry
	SOURCE_DATE_EPOCH=$(DEB_DATE) $(GO) test $(GOFLAGS_T) -count=1 -run '^TestManPages$$' ./cmd/ferry/ \
		-args -man-dir $(CURDIR)/$(DEB_STAGE)/man
	gzip -9n $(DEB_STAGE)/man/*.1
	for shell in bash zsh fish; do \
		FERRY_CONFIG=/dev/null $(DEB_STAGE)/ferry completion $$shell > $(DEB_STAGE)/completions/ferry.$$shell || exit 1; \
	done
	gzip -9nc $(DEB_CHANGELOG) > $(DEB_STAGE)/changelog.gz
	GO=$(GO) bash packaging/deb/go-copyright.sh $(DEB_STAGE)/ferry > $(DEB_STAGE)/copyright
	cp README.md docs/*.md $(DEB_STAGE)/doc/
	$(GO) build -C packaging/nfpm -o $(CURDIR)/bin/nfpm-deb .
	bin/nfpm-deb -config packaging/nfpm.yaml -version $(DEB_VERSION) -shlibs $(DEB_STAGE)/ferry -out bin

# TestChaos for CHAOS_DURATION of faults (make test runs it for 2 minutes):
# kill -9 of every Ferry process and NATS server, SIGSTOP of the NATS
# servers, and OSD kills on its own test bed, while snapshot events are
# queued; then every backup must converge with no manual step. CHAOS_SEED
# picks the schedule; the logs go to a new directory under CHAOS_DIR.
CHAOS_DURATION ?= 20m
CHAOS_SEED     ?= $(shell date +%s)
CHAOS_DIR      ?= $(CURDIR)/bin/chaos
chaos: build
	mkdir -p $(CHAOS_DIR)
	FERRY_BIN=$(CURDIR)/$(BIN) FERRY_CHAOS_DURATION=$(CHAOS_DURATION) FERRY_CHAOS_SEED=$(CHAOS_SEED) \
		FERRY_CHAOS_DIR=$(CHAOS_DIR) $(GO) test $(GOFLAGS_T) -count=1 -run '^TestChaos$$' -v -timeout 0 ./internal/chaos/

demo: build
	bash packaging/demo.sh

devenv:
	@bash internal/testbed/devenv.sh up $(DEVENV)

devenv-down:
	@bash internal/testbed/devenv.sh down $(DEVENV)

clean:
	rm -rf bin
