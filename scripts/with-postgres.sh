#!/usr/bin/env bash
# Runs a command beside a throwaway Postgres server: a fresh cluster in a
# temporary directory, reachable only through a Unix socket there (so it
# never clashes with another server's port), removed afterwards. The
# command gets its address in AIRLOCK_TEST_POSTGRES.
#   scripts/with-postgres.sh go test ./internal/ledger/...
set -euo pipefail

bindir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
if [ -z "$bindir" ]; then
	echo "with-postgres: no Postgres server installed (scripts/install-peers.sh installs it)" >&2
	exit 1
fi

dir=$(mktemp -d /tmp/airlock-pg.XXXXXX)
# Postgres refuses to run as root: the cluster belongs to the postgres user
# when we are root, to us otherwise.
as=()
if [ "$(id -u)" -eq 0 ]; then
	chown postgres "$dir"
	as=(runuser -u postgres --)
fi
stop() {
	"${as[@]}" "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
	rm -rf "$dir"
}
trap stop EXIT

"${as[@]}" "$bindir/initdb" -D "$dir/data" -A trust -U postgres >/dev/null
# fsync off: the tests need a database, not a durable one.
"${as[@]}" "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
	-o "-c listen_addresses='' -c unix_socket_directories='$dir' -c fsync=off -c max_connections=200" start >/dev/null
"${as[@]}" "$bindir/createdb" -h "$dir" -U postgres airlock_test

export AIRLOCK_TEST_POSTGRES="postgres://postgres@/airlock_test?host=$dir"
"$@"
