#!/usr/bin/env bash
# The one test command: system packages, test venv, cargo build + unit tests, end-to-end tests,
# the conformance suite and its published matrix.
# Idempotent: each phase does nothing it has already done on this machine.
#
#   bash scripts/test.sh [extra pytest args...]
#
# Environment:
#   STRAIT_VENV       test venv (default $HOME/.cache/strait/venv)
#   CARGO_TARGET_DIR  cargo target dir (default $HOME/.cache/strait/target)
#   STRAIT_SKIP_CARGO=1  skip phase (c) and test the binary already in CARGO_TARGET_DIR
#   STRAIT_BIN        binary under test (default $CARGO_TARGET_DIR/debug/strait)
#   PYTHON            interpreter for the venv (default python3)
#   STRAIT_SKIP_THREADS_PASS=1  skip phase (f), the second pass on the threads I/O engine
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"

export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/strait/target}"
venv="${STRAIT_VENV:-$HOME/.cache/strait/venv}"
python="${PYTHON:-python3}"
req="$repo/tests/requirements.txt"
[ -d "$HOME/.cargo/bin" ] && export PATH="$HOME/.cargo/bin:$PATH"

phase_names=()
phase_secs=()
phase_start=0
current=""
begin() { current="$1"; phase_start=$SECONDS; echo "==> [$current]"; }
end() {
  local d=$((SECONDS - phase_start))
  phase_names+=("$current"); phase_secs+=("$d")
  echo "==> [$current] done in ${d}s"
}
summary() {
  local rc=$?
  echo "==> timings:"
  local i
  for i in "${!phase_names[@]}"; do printf '    %-12s %5ss\n' "${phase_names[$i]}" "${phase_secs[$i]}"; done
  if [ "$rc" -ne 0 ] && [ -n "$current" ]; then echo "==> FAILED in phase [$current] (exit $rc)"; fi
  exit "$rc"
}
trap summary EXIT

# (a) system packages -----------------------------------------------------------------------
begin apt
bash "$repo/scripts/install-deps.sh"
if [ -z "${LIBCLANG_PATH:-}" ] && [ -d /usr/lib/llvm-14/lib ]; then export LIBCLANG_PATH=/usr/lib/llvm-14/lib; fi
end

# (b) test venv -----------------------------------------------------------------------------
begin venv
if [ ! -x "$venv/bin/python" ]; then
  echo "creating $venv"
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv "$venv"
fi
stamp="$venv/.strait-requirements.sha256"
want="$( (sha256sum < "$req"; "$venv/bin/python" -c 'import sys; print(sys.version)') | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "requirements unchanged (stamp $stamp)"
else
  "$venv/bin/python" -m pip install -q --upgrade pip
  "$venv/bin/python" -m pip install -q -r "$req"
  "$venv/bin/python" -m pip check
  echo "$want" > "$stamp"
fi
"$venv/bin/rclone" version | sed -n 1p
"$venv/bin/aws" --version
end

# (b2) test tools built from source: the OTLP receiver (tests/otlp-receiver, Go; ~1.5 min and
# ~340 MB of modules from the Go module proxy on a fresh machine, then Go's build cache) ------
begin tools
[ -d /usr/local/go/bin ] && export PATH="$PATH:/usr/local/go/bin"
export STRAIT_OTLP_RECEIVER="$(bash "$repo/scripts/build-otlp-receiver.sh")"
# The OpenID provider of the federation tests (tests/oidc-provider; npm, a few seconds).
export STRAIT_OIDC_PROVIDER="$(bash "$repo/scripts/install-oidc-provider.sh")"
end

# (b3) the PyTorch environment for tests/e2e/test_pytorch.py: Debian's CPU-only torch in a venv
# with --system-site-packages plus s3torchconnector (about 1 minute and 650 MB on a fresh
# machine; 1.5 s when current) --------------------------------------------------------------
begin torch
bash "$repo/scripts/install-torch-env.sh"
end

# (c) cargo build and unit tests ------------------------------------------------------------
if [ "${STRAIT_SKIP_CARGO:-0}" = "1" ]; then
  echo "==> [cargo] skipped (STRAIT_SKIP_CARGO=1)"
else
  begin build
  cargo build --workspace --all-targets
  end
  begin lint
  cargo fmt --all -- --check
  cargo clippy --workspace --all-targets -- -D warnings
  end
  begin cargo-test
  cargo test --workspace
  end
fi

# (d) end-to-end tests ----------------------------------------------------------------------
begin e2e
export STRAIT_BIN="${STRAIT_BIN:-$CARGO_TARGET_DIR/debug/strait}"
[ -x "$STRAIT_BIN" ] || { echo "no binary at $STRAIT_BIN" >&2; exit 1; }
# The venv's bin first: aws, rclone and python of the pinned versions.
export PATH="$venv/bin:$PATH"
# Pass 1: the engine strait chooses itself (io_uring where the kernel allows it).
"$venv/bin/python" -m pytest tests/e2e -q -ra -p no:cacheprovider "$@"
end

# (e) conformance: the S3 suite against strait (HTTP and TLS) and moto, three sessions in
# parallel, then the check that conformance/MATRIX.md is what this run renders --------------
begin conformance
"$venv/bin/python" conformance/matrix.py --check
end

# (f) the same end-to-end and conformance suites again on the other I/O engine, the blocking
# thread pool (STRAIT_IO_ENGINE reaches every strait the tests start) ------------------------
if [ "${STRAIT_SKIP_THREADS_PASS:-0}" != "1" ]; then
  begin e2e-threads
  STRAIT_IO_ENGINE=threads "$venv/bin/python" -m pytest tests/e2e -q -ra -p no:cacheprovider "$@"
  end
  begin conformance-threads
  STRAIT_IO_ENGINE=threads "$venv/bin/python" conformance/matrix.py --check
  end
fi
current=""
