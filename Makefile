# Ferry's build, test and demo entry points. Every target that needs Ceph or
# libvirt headers installs them first (Debian 12) when they are missing.

GO        ?= go
TAGS      := pacific
GOFLAGS_T := -tags $(TAGS)
BIN       := bin/ferry
DEVENV    ?= .devenv

.PHONY: all build deps test test-short fuzz bench demo devenv devenv-down vet clean

all: build

deps:
	@bash .ci/install-deps.sh

build: deps
	$(GO) build $(GOFLAGS_T) -o $(BIN) ./cmd/ferry

vet: deps
	$(GO) vet $(GOFLAGS_T) ./...

# The full suite: unit tests, the real two-site Ceph test bed, a bounded fuzz run.
test: deps vet
	$(GO) test $(GOFLAGS_T) -count=1 -timeout 40m ./...
	$(MAKE) --no-print-directory fuzz

fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzReader$$' -fuzztime 20s ./internal/rbddiff/

bench: build
	$(GO) test $(GOFLAGS_T) -count=1 -timeout 60m -run '^TestBenchTable$$' -v ./internal/bench/ -args -bench-table

demo: build
	bash packaging/demo.sh

devenv:
	@bash internal/testbed/devenv.sh up $(DEVENV)

devenv-down:
	@bash internal/testbed/devenv.sh down $(DEVENV)

clean:
	rm -rf bin
