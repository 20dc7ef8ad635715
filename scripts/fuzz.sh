#!/usr/bin/env bash
# Runs every fuzz target for a while (default 30s each; FUZZTIME=5m for longer).
# New failing inputs land in codec/testdata/fuzz/<Target>/: commit them with the fix.
set -euo pipefail
cd "$(dirname "$0")/.."
time=${FUZZTIME:-30s}
for pkg in $(go list ./...); do
	dir=$(go list -f '{{.Dir}}' "$pkg")
	for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
		echo "== $pkg $target ($time)"
		# -fuzzminimizetime keeps long inputs from stalling the fuzzer while it shrinks them.
		go test -run '^$' -fuzz "^${target}\$" -fuzztime "$time" -fuzzminimizetime 500x "$pkg"
	done
done
