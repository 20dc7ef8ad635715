#!/usr/bin/env bash
# Everything to run before a commit: formatting, vet, staticcheck, the import
# rules and the race-enabled tests.
set -euo pipefail
cd "$(dirname "$0")/.."
unformatted=$(gofmt -l $(git ls-files '*.go'))
if [ -n "$unformatted" ]; then echo "gofmt would change:"; echo "$unformatted"; exit 1; fi
go vet ./...
go run honnef.co/go/tools/cmd/staticcheck@v0.8.2 ./...
scripts/check-imports.sh
go test -race -count=1 ./...
