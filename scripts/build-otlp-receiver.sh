#!/usr/bin/env bash
# Build the e2e OTLP receiver (tests/otlp-receiver, a wrapper around the OpenTelemetry
# Collector's otlpreceiver) and print the binary's path on stdout.
#
#   scripts/build-otlp-receiver.sh [OUTPUT]
#
# OUTPUT defaults to ${STRAIT_CACHE:-$HOME/.cache/strait}/bin/otlp-receiver. The build is skipped
# when OUTPUT is newer than main.go, go.mod and go.sum. Needs Go (see go.mod for the version);
# modules come from the Go module proxy on the first build.
set -euo pipefail

src="$(cd "$(dirname "${BASH_SOURCE[0]}")/../tests/otlp-receiver" && pwd)"
out="${1:-${STRAIT_CACHE:-$HOME/.cache/strait}/bin/otlp-receiver}"

if [ -x "$out" ] && [ "$out" -nt "$src/main.go" ] && [ "$out" -nt "$src/go.mod" ] && [ "$out" -nt "$src/go.sum" ]; then
  echo "$out"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  echo "build-otlp-receiver: go not found on PATH (install Go to build $src)" >&2
  exit 1
fi

mkdir -p "$(dirname "$out")"
out="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"
echo "build-otlp-receiver: building $out" >&2
# Build to a temporary name and rename, so an interrupted build never leaves a binary that
# looks up to date.
tmp="$out.tmp.$$"
trap 'rm -f "$tmp"' EXIT
(cd "$src" && go build -trimpath -buildvcs=false -o "$tmp" .)
mv -f "$tmp" "$out"
echo "$out"
