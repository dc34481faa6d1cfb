#!/usr/bin/env bash
# Installs what `make bench` needs and `make test` does not: the OpenSSH
# server (sshd, the baseline airlock is compared with), plus the OpenSSH
# client and versitygw when missing (the same version as
# scripts/install-peers.sh). Safe to re-run; needs root for apt.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
VERSITYGW_VERSION="$(sed -n 's/^VERSITYGW_VERSION=//p' "$here/../scripts/install-peers.sh")"

need_apt=()
[ -x /usr/sbin/sshd ] || command -v sshd >/dev/null || need_apt+=(openssh-server)
command -v sftp >/dev/null || need_apt+=(openssh-client)
command -v ssh-keygen >/dev/null || need_apt+=(openssh-client)

if ((${#need_apt[@]})); then
	sudo=""
	[ "$(id -u)" -eq 0 ] || sudo="sudo"
	echo "installing Debian packages: ${need_apt[*]}"
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
	# The package's own sshd service is not wanted: where an init system
	# would start it, the bench still only talks to its own sshd.
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

gobin="$(go env GOPATH)/bin"
if ! command -v versitygw >/dev/null && [ ! -x "$gobin/versitygw" ]; then
	echo "installing versitygw $VERSITYGW_VERSION"
	(cd / && GOFLAGS= go install "github.com/versity/versitygw/cmd/versitygw@$VERSITYGW_VERSION")
fi
