#!/usr/bin/env bash
# Installs the real programs the integration tests talk to, when missing:
# the OpenSSH client, rclone, ssh-audit (Debian packages), versitygw, and
# the linter golangci-lint (Go modules).
# Arguments name more Debian packages to install when missing (make bench
# passes openssh-server). Safe to re-run; needs root for apt on a fresh
# machine.
set -euo pipefail

VERSITYGW_VERSION=v1.8.0
GOLANGCI_LINT_VERSION=v2.15.0

need_apt=()
command -v sftp >/dev/null || need_apt+=(openssh-client)
command -v ssh-keygen >/dev/null || need_apt+=(openssh-client)
command -v rclone >/dev/null || need_apt+=(rclone)
command -v ssh-audit >/dev/null || need_apt+=(ssh-audit)
for pkg in "$@"; do
	dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done

if ((${#need_apt[@]})); then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	echo "installing Debian packages: ${need_apt[*]}"
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

gobin="$(go env GOPATH)/bin"
if ! command -v versitygw >/dev/null && [ ! -x "$gobin/versitygw" ]; then
	echo "installing versitygw $VERSITYGW_VERSION"
	# Built outside this module so its dependencies do not touch go.mod.
	(cd / && GOFLAGS= go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION")
fi

if ! command -v golangci-lint >/dev/null && [ ! -x "$gobin/golangci-lint" ]; then
	echo "installing golangci-lint $GOLANGCI_LINT_VERSION"
	(cd / && GOFLAGS= go install "github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$GOLANGCI_LINT_VERSION")
fi
