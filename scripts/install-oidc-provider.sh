#!/usr/bin/env bash
# Install the federation tests' OpenID provider (tests/oidc-provider: panva/node-oidc-provider,
# pinned by package-lock.json) and print its directory on stdout.
#
#   scripts/install-oidc-provider.sh [DIR]
#
# DIR defaults to ${STRAIT_CACHE:-$HOME/.cache/strait}/oidc-provider. `npm ci` runs only when
# package-lock.json changed since the last install (about 3 s and 2 MB from the npm registry).
set -euo pipefail

src="$(cd "$(dirname "${BASH_SOURCE[0]}")/../tests/oidc-provider" && pwd)"
dir="${1:-${STRAIT_CACHE:-$HOME/.cache/strait}/oidc-provider}"
mkdir -p "$dir"
if ! command -v npm >/dev/null 2>&1; then
  echo "install-oidc-provider: installing npm (Debian)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q npm >&2
fi
cp "$src/package.json" "$src/package-lock.json" "$src/server.mjs" "$dir/"
want="$(sha256sum < "$src/package-lock.json" | cut -d' ' -f1)"
stamp="$dir/.strait-lock.sha256"
if [ ! -d "$dir/node_modules/oidc-provider" ] || [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >&2)
  echo "$want" > "$stamp"
fi
echo "$dir"
