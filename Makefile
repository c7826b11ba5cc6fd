# `sudo make lab` and `sudo make test` do all the set-up a fresh Debian or
# Ubuntu VM needs: the tools the lessons print (iproute2, ping, iptables,
# ...), then the build.
PREFIX  ?= /usr/local
BIN     := bin
LESSONS := $(notdir $(wildcard cmd/*))
GO      ?= $(shell command -v go 2>/dev/null || echo /usr/local/go/bin/go)
# Tests that need root make namespaces; two packages at once is what a
# 2-core machine takes without timing noise.
TESTFLAGS ?= -p 2 -count=1 -timeout 20m

.PHONY: all setup build install lab test test-short transcripts bench clean-all

all: build

setup:
	@scripts/setup.sh

build:
	@mkdir -p $(BIN)
	$(GO) build -o $(BIN)/ ./cmd/...

install: build
	install -m 0755 $(addprefix $(BIN)/,$(LESSONS)) $(PREFIX)/bin/

lab: setup install
	$(PREFIX)/bin/lab netns-veth

test: setup build
	$(GO) vet ./...
	$(GO) test $(TESTFLAGS) ./...

test-short: build
	$(GO) test -short ./...

# Every lesson whose tests compare a fresh run with transcripts/LESSON.md.
LESSON_PKGS = $(sort $(dir $(shell grep -l 'labtest.Golden' labs/*/*_test.go)))

transcripts: build
	$(GO) test -count=1 $(addprefix ./,$(LESSON_PKGS)) -run '^TestTranscript$$' -update

bench: build
	$(GO) test ./labs/... ./primitives/... -run '^$$' -bench . -benchtime 5x

clean-all: build
	@for l in $$($(BIN)/lab list | cut -d' ' -f1); do $(BIN)/lab $$l clean; done
