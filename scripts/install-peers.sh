#!/usr/bin/env bash
# Installs the real programs the tests talk to, when missing: the OpenSSH
# client, rclone, lftp, ssh-audit, curl, python3-paramiko, chromium, clamd, HAProxy,
# nginx and the Postgres server (Debian packages), versitygw, helm (for the
# chart's checks), local-kms (the AWS KMS emulator) and the linter
# golangci-lint (Go modules).
# Arguments name more Debian packages to install when missing (make bench
# passes openssh-server). Safe to re-run; needs root for apt on a fresh
# machine.
set -euo pipefail

VERSITYGW_VERSION=v1.8.0
GOLANGCI_LINT_VERSION=v2.15.0
HELM_VERSION=v4.3.2
LOCAL_KMS_VERSION=v0.0.0-20260228092603-2a5e92d09ab6

need_apt=()
command -v sftp >/dev/null || need_apt+=(openssh-client)
command -v ssh-keygen >/dev/null || need_apt+=(openssh-client)
command -v rclone >/dev/null || need_apt+=(rclone)
command -v lftp >/dev/null || need_apt+=(lftp)
command -v ssh-audit >/dev/null || need_apt+=(ssh-audit)
# script(1): a pseudo-terminal for the release client's progress bars.
command -v script >/dev/null || need_apt+=(bsdutils)
# Clients without AEAD ciphers (the compatible algorithm profile): Debian's
# curl (libcurl with libssh2) and paramiko, for Debian's own python3.
command -v curl >/dev/null || need_apt+=(curl)
/usr/bin/python3 -c 'import paramiko' 2>/dev/null || need_apt+=(python3-paramiko)
# Headless Chromium drives the web console's tests (chromedp).
command -v chromium >/dev/null || need_apt+=(chromium)
# Servers the tests start themselves, installed with their services held
# (below): Postgres for scripts/with-postgres.sh, and clamd, which is in
# /usr/sbin, where a non-root PATH may not look.
need_servers=()
compgen -G '/usr/lib/postgresql/*/bin/postgres' >/dev/null || need_servers+=(postgresql)
need_clamd=false
command -v clamd >/dev/null || [ -x /usr/sbin/clamd ] || { need_clamd=true; need_servers+=(clamav-daemon); }
# HAProxy, in front of airlock with the PROXY protocol; the tests run their
# own, so the package's service is left stopped too.
need_haproxy=false
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || { need_haproxy=true; need_servers+=(haproxy); }
# nginx, the HTTPS receiver (mutual TLS, PUT) of the https sink's tests;
# they run their own, so the package's service is left stopped too.
need_nginx=false
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || { need_nginx=true; need_servers+=(nginx); }
for pkg in "$@"; do
	dpkg -s "$pkg" >/dev/null 2>&1 || need_apt+=("$pkg")
done

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if ((${#need_apt[@]} + ${#need_servers[@]})); then
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
fi
if ((${#need_apt[@]})); then
	echo "installing Debian packages: ${need_apt[*]}"
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_apt[@]}"
fi

# The tests start their own clamd (with a tiny signature database) and
# Postgres (in a temporary directory). The packages' services would
# otherwise start a system Postgres and a clamd and freshclam, which
# downloads the official signatures (hundreds of MB) and keeps running: a
# temporary policy-rc.d keeps them from starting during the install, and
# systemd is told not to start clamd at boot either.
if ((${#need_servers[@]})); then
	echo "installing Debian packages: ${need_servers[*]} (their services left stopped)"
	policy=""
	if [ ! -e /usr/sbin/policy-rc.d ]; then
		policy=/usr/sbin/policy-rc.d
		printf '#!/bin/sh\nexit 101\n' | $sudo tee "$policy" >/dev/null
		$sudo chmod 755 "$policy"
		trap '$sudo rm -f "$policy"' EXIT
	fi
	$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need_servers[@]}"
	if [ -n "$policy" ]; then
		$sudo rm -f "$policy"
		trap - EXIT
	fi
fi
if $need_haproxy; then
	if [ -d /run/systemd/system ]; then
		$sudo systemctl disable --now haproxy.service >/dev/null 2>&1 || true
	else
		[ ! -x /etc/init.d/haproxy ] || $sudo /etc/init.d/haproxy stop >/dev/null 2>&1 || true
	fi
fi
if $need_nginx; then
	if [ -d /run/systemd/system ]; then
		$sudo systemctl disable --now nginx.service >/dev/null 2>&1 || true
	else
		[ ! -x /etc/init.d/nginx ] || $sudo /etc/init.d/nginx stop >/dev/null 2>&1 || true
	fi
fi
if $need_clamd; then
	if [ -d /run/systemd/system ]; then
		# The socket unit would start clamd on the first connection.
		$sudo systemctl disable --now clamav-daemon.socket clamav-daemon.service clamav-freshclam.service >/dev/null 2>&1 || true
	else
		for svc in clamav-daemon clamav-freshclam; do
			[ ! -x "/etc/init.d/$svc" ] || $sudo "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
		done
	fi
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

if ! command -v local-kms >/dev/null && [ ! -x "$gobin/local-kms" ]; then
	echo "installing local-kms $LOCAL_KMS_VERSION (the AWS KMS emulator, for the crypt tests)"
	(cd / && GOFLAGS= go install "github.com/nsmithuk/local-kms@$LOCAL_KMS_VERSION")
fi

if ! command -v helm >/dev/null && [ ! -x "$gobin/helm" ]; then
	echo "installing helm $HELM_VERSION (takes a few minutes)"
	(cd / && GOFLAGS= go install "helm.sh/helm/v4/cmd/helm@$HELM_VERSION")
fi
