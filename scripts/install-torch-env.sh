#!/usr/bin/env bash
# The PyTorch environment of tests/e2e/test_pytorch.py and bench/dataloader.py (idempotent).
#
#   bash scripts/install-torch-env.sh
#
# (a) Debian's CPU-only torch (python3-torch 1.13.1) and python3-venv, unless installed. PyPI's
#     torch wheel is no option here: it pulls ~5 GB of CUDA wheels.
# (b) A venv over it (--system-site-packages, so Debian's torch and numpy are importable) with
#     s3torchconnector and the fsspec/s3fs stack of tests/torch-requirements.txt, installed with
#     --no-deps from that fully pinned list. Rebuilt from scratch only when the stamp (a hash of
#     the requirements file, the interpreter and the torch package version) changes.
#
# Environment:
#   STRAIT_TORCH_VENV  the venv (default $HOME/.cache/strait/torch-venv)
#
# Prints the venv's python as its last line.
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${STRAIT_TORCH_VENV:-$HOME/.cache/strait/torch-venv}"
req="$repo/tests/torch-requirements.txt"
python=/usr/bin/python3

# (a) system packages ---------------------------------------------------------------------------
pkgs=(python3-torch python3-venv)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  t=$SECONDS
  echo "installing: ${missing[*]} (Debian's torch: ~150 MB download, ~650 MB on disk)" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
  echo "apt install done in $((SECONDS - t))s" >&2
fi

# (b) the venv ----------------------------------------------------------------------------------
stamp="$venv/.strait-torch-requirements.sha256"
want="$( (sha256sum < "$req"; "$python" -c 'import sys; print(sys.version)';
          dpkg-query -W -f='${Version}\n' python3-torch) | sha256sum | cut -d' ' -f1)"
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "torch venv unchanged (stamp $stamp)" >&2
else
  t=$SECONDS
  echo "creating $venv" >&2
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  "$python" -m venv --system-site-packages "$venv"
  # --prefer-binary: every pin but s3torchconnector (an sdist of pure Python) is a wheel.
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --no-deps --prefer-binary -r "$req" >&2
  # pip check also sees Debian's packages (their own gaps are not ours), and s3torchconnector's
  # declared torch>=2.0.1: fail only on complaints about the pinned packages, bar that one.
  "$venv/bin/python" - "$req" >&2 <<'EOF'
import re, subprocess, sys

norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
pinned = {norm(line.split("==")[0]) for line in open(sys.argv[1])
          if line.strip() and not line.lstrip().startswith("#")}
out = subprocess.run([sys.executable, "-m", "pip", "check"], capture_output=True, text=True).stdout
bad = [ln for ln in out.splitlines()
       if ln.split() and norm(ln.split()[0]) in pinned
       and not (norm(ln.split()[0]) == "s3torchconnector" and "has requirement torch" in ln)]
if bad:
    sys.exit("pip check: " + "\n".join(bad))
EOF
  "$venv/bin/python" -c 'import torch, s3torchconnector, s3fs' >&2
  echo "$want" > "$stamp"
  echo "torch venv ready in $((SECONDS - t))s" >&2
fi
"$venv/bin/python" -c 'import torch, s3torchconnector, s3fs; print(f"torch {torch.__version__}, s3torchconnector {s3torchconnector.__version__}, s3fs {s3fs.__version__}")' >&2
echo "$venv/bin/python"
