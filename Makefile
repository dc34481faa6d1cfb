# airlock — build, run and test. `make run` starts a demo; `make test` is
# what CI runs on a fresh Debian machine (it installs the peers it needs).

GO      ?= go
GOBIN   := $(shell $(GO) env GOPATH)/bin
export PATH := $(GOBIN):$(PATH)

# Unit tests are everything but the integration suite; the packages whose
# tests exercise concurrency run again under the race detector.
UNIT_PKGS := ./cmd/... ./internal/...
RACE_PKGS := ./internal/sftpd/... ./internal/ledger/... ./internal/config/... ./internal/storage/... ./internal/notify/... ./internal/pipeline/... ./internal/scan/...

.PHONY: all build run test peers vet fmt-check lint unit integration helm image fuzz bench clean

all: build

build:
	$(GO) build -o bin/airlock ./cmd/airlock
	$(GO) build -o bin/airlock-release ./cmd/airlock-release

run:
	$(GO) run ./cmd/airlock demo --log-format text

test: peers vet fmt-check lint unit integration helm fuzz

peers:
	./scripts/install-peers.sh

# The release client runs on the desktops of those who release data:
# the binary must build for them, though it serves SFTP on Linux only.
vet:
	$(GO) vet ./...
	for os in windows darwin; do for cmd in airlock airlock-release; do \
		GOOS=$$os GOARCH=amd64 $(GO) build -o /dev/null ./cmd/$$cmd || exit 1; done; done

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

# The Helm chart: lint and render it for each environment's values, then
# decode the rendered objects strictly into the Kubernetes API types
# (deploy/helm/check, a module of its own so that k8s.io/api stays out of
# airlock's). Offline: no schema is downloaded.
HELM_ENVS := dev prod
helm:
	for env in $(HELM_ENVS); do \
		helm lint --strict deploy/helm/airlock -f deploy/helm/airlock/values-$$env.yaml || exit 1; \
		helm template airlock deploy/helm/airlock -f deploy/helm/airlock/values-$$env.yaml >/dev/null || exit 1; \
	done
	cd deploy/helm/check && $(GO) vet ./... && CI=true $(GO) test -count=1 ./...

# The container image (Dockerfile): a static binary on an empty base, built
# offline with podman or buildah from what this prepares in build/image.
IMAGE ?= airlock:dev
image:
	rm -rf build/image && mkdir -p build/image
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags='-s -w' -o build/image/airlock ./cmd/airlock
	cp /etc/ssl/certs/ca-certificates.crt build/image/
	echo 'airlock:x:65532:65532:airlock:/:/nonexistent' > build/image/passwd
	echo 'airlock:x:65532:' > build/image/group
	if command -v podman >/dev/null; then podman build -t $(IMAGE) -f Dockerfile build/image; \
	else buildah bud -t $(IMAGE) -f Dockerfile build/image; fi

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
	rm -rf bin build .airlock-demo
