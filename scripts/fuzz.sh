#!/usr/bin/env bash
# Runs every Go fuzz target of the module for FUZZTIME each (default 30s).
# Go runs one fuzz target per invocation, so they are found and run in turn.
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${FUZZTIME:-30s}"
status=0
while IFS=: read -r file target; do
	pkg="./$(dirname "$file")"
	echo "fuzz $pkg $target ($fuzztime)"
	if ! go test -run='^$' -fuzz="^${target}\$" -fuzztime="$fuzztime" -fuzzminimizetime=10s "$pkg"; then
		status=1
	fi
done < <(grep -rHo --include='*_test.go' '^func Fuzz[A-Za-z0-9_]*' internal cmd | sed 's/:func /:/' | sort -u)
exit "$status"
