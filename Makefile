# cca-testbed: `make run` runs the full matrix and writes the report;
# `make test` runs every test, real boots included. Both do their own set-up.
SHELL := /bin/bash
export PATH := /usr/local/go/bin:$(PATH)
GO ?= go
RESULTS ?= results

.PHONY: run test setup build prepare vet fmt-check fuzz bench clean

setup:
	@scripts/setup-host

build:
	@$(GO) build -o bin/testbed ./cmd/testbed

# The real matrix: 12 variants (stock, the recipes and debian-kernel, Debian's
# prebuilt kernel package, included) x 4 roles plus realm cells on
# trixie, realm cells through the realm firmware, every variant's host on the
# real firmware builds (tf-rmm-0.9, tf-rmm-0.8), two VMs
# in flight; exit 1 means a check moved from its recorded expectation.
run: setup build
	@bin/testbed matrix --backend qemu --out $(RESULTS) --format text; rc=$$?; \
	  echo "report: $(RESULTS)/report.html (also .json, .xml, .md, snapshots/, cells/)"; exit $$rc

# The cells the real-boot tests use (vm, cmd/testbed, images): built by
# `testbed prepare` first, so a cold cache's builds (rootfs, kernels,
# firmware) are not charged to one test binary's timeout. A test whose
# cell is missing here still builds it itself, only later. Kernels are
# built in this order in the one kernel tree, so it groups them by
# config: those with CONFIG_PCI_IDE (the glue, tsm-null, faux-tree) first,
# then those without, ending with stock, the base of the test series
# built next. Each flip of PCI_IDE recompiles about 60 PCI files (a
# switch of 70-90 s instead of 35-45 s). The other positions, tf-rmm-0.8, trixie
# and Debian's kernel are left to `make run` and scripts/nightly (build
# tag nightly: the tagged test files say which): a cold make test must stay
# under 30 minutes on two cores.
TEST_CELLS ?= platform/realm platform/plain platform/host-da platform/host@tf-rmm-0.9 \
  tsm-null/host-da faux-tree/realm faux/realm smccc-bus-next/realm stock/realm

# The fuzz smoke run goes beside prepare, not before it: alone it put its
# 69 s in front of prepare, whose first minute waits on downloads. Both
# write whole lines to the one output.
test: setup vet fmt-check
	@$(MAKE) --no-print-directory -j2 fuzz prepare
	$(GO) test -count=1 -timeout 28m ./...

prepare: build
	@bin/testbed prepare $(TEST_CELLS)

# Every fuzz target for FUZZTIME: in make test a short run (that each
# target builds and explores at all; 3 s each cost 108 s of the cold
# budget, 1 s 69 s), scripts/nightly runs them for minutes. A failing
# input lands in the package's testdata/fuzz/ for committing.
FUZZTIME ?= 1s
fuzz:
	@FUZZTIME=$(FUZZTIME) GO=$(GO) scripts/fuzz

vet:
	@$(GO) vet ./...
	@$(GO) vet -tags nightly ./vm/ ./images/kernel/

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt needed: $$out"; exit 1; fi

bench:
	$(GO) test -run '^$$' -bench . -benchtime 20x ./...

clean:
	rm -rf bin $(RESULTS)
