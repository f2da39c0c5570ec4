#!/usr/bin/env bash
# Build and run the gateway on its embedded default: ./data served on 127.0.0.1:9000, RocksDB
# state in ./data/.strait, generated credentials printed at start. Extra arguments go to
# `strait serve` (for example --listen 127.0.0.1:9001 --root /lustre/proj).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/scripts/install-deps.sh"
[ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"
if [ -z "${LIBCLANG_PATH:-}" ] && [ -d /usr/lib/llvm-14/lib ]; then export LIBCLANG_PATH=/usr/lib/llvm-14/lib; fi
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/strait/target}"
cargo build --manifest-path "$repo/Cargo.toml" -p strait-gateway --bin strait
exec "$CARGO_TARGET_DIR/debug/strait" serve "$@"
