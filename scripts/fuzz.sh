#!/usr/bin/env bash
# Fuzz the policy parser/evaluator and the wildcard matcher with cargo-fuzz (libFuzzer).
# The corpus is kept in git (policy/fuzz/corpus/<target>/, minimized after each run) and is
# replayed by every CI run (policy/tests/fuzz_corpus.rs); crashes land in
# policy/fuzz/artifacts/<target>/.
#
#   bash scripts/fuzz.sh [SECONDS_PER_TARGET]     (default 60)
#
# The toolchain is stable: cargo-fuzz's -Z flags are allowed with RUSTC_BOOTSTRAP=1, and the
# targets are built without a sanitizer (Strait's policy crate has no unsafe code to check).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
secs="${1:-60}"
[ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"
command -v cargo-fuzz >/dev/null 2>&1 || cargo install cargo-fuzz --locked
export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${STRAIT_FUZZ_TARGET_DIR:-$HOME/.cache/strait/fuzz-target}"
cd "$repo/policy"
for t in parse glob; do
  echo "==> fuzzing $t for ${secs}s"
  cargo fuzz run --sanitizer none "$t" "fuzz/corpus/$t" -- -max_total_time="$secs" -max_len=4096 -print_final_stats=1
  cargo fuzz cmin --sanitizer none "$t" "fuzz/corpus/$t" >/dev/null 2>&1 || true
  echo "==> $t corpus: $(ls "fuzz/corpus/$t" | wc -l) inputs"
done
