# airlock — build, run and test. `make run` starts a demo; `make test` is
# what CI runs on a fresh Debian machine (it installs the peers it needs).

GO      ?= go
GOBIN   := $(shell $(GO) env GOPATH)/bin
export PATH := $(GOBIN):$(PATH)

# Unit tests are everything but the integration suite; the packages whose
# tests exercise concurrency run again under the race detector.
UNIT_PKGS := ./cmd/... ./internal/...
RACE_PKGS := ./internal/sftpd/... ./internal/ledger/... ./internal/config/... ./internal/storage/... ./internal/notify/... ./internal/pipeline/... ./internal/scan/...

.PHONY: all build run test peers vet fmt-check lint unit integration fuzz bench clean

all: build

build:
	$(GO) build -o bin/airlock ./cmd/airlock

run:
	$(GO) run ./cmd/airlock demo --log-format text

test: peers vet fmt-check lint unit integration fuzz

peers:
	./scripts/install-peers.sh

vet:
	$(GO) vet ./...

lint:
	golangci-lint run ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

# Both runs share one throwaway Postgres server, so that every ledger and
# pipeline test runs on SQLite and on Postgres.
unit:
	./scripts/with-postgres.sh sh -c '$(GO) test -count=1 $(UNIT_PKGS) && $(GO) test -race -count=1 $(RACE_PKGS)'

# Beside a throwaway Postgres too: the tests of several nodes share one.
integration:
	./scripts/with-postgres.sh $(GO) test -count=1 -timeout 20m ./test/integration/...

# A short run of every fuzz target (FUZZTIME each); new crashers are saved
# under testdata/fuzz and fail the run.
fuzz:
	FUZZTIME=$(or $(FUZZTIME),30s) ./scripts/fuzz.sh

# airlock against OpenSSH's sftp server on this machine (bench/cmd/bench):
# installs sshd if missing (install-peers.sh also brings HAProxy, Postgres and
# versitygw, for the S3 and cluster scenarios), runs as root, writes docs/benchmarks.md.
# `make bench BENCH_ARGS=-quick` checks the harness in about a minute.
bench:
	./scripts/install-peers.sh openssh-server
	$(GO) run ./bench/cmd/bench $(or $(BENCH_ARGS),-out docs/benchmarks.md)

clean:
	rm -rf bin .airlock-demo
