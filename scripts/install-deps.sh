#!/usr/bin/env bash
# System packages needed to build Strait (idempotent): a C++ toolchain for RocksDB and libclang
# for bindgen. Debian's librocksdb-dev (7.8) is too old for the rocksdb crate, so RocksDB is
# built from the bundled sources. Open MPI and MPICH (both, side by side) build and run the MPI
# shim's tests (mpicc.openmpi/mpirun.openmpi, mpicc.mpich/mpirun.mpich).
set -euo pipefail
pkgs=(build-essential pkg-config libclang1-14 libclang-common-14-dev ca-certificates openssl
      openmpi-bin libopenmpi-dev mpich libmpich-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  sudo=""; [ "$(id -u)" -ne 0 ] && sudo="sudo"
  echo "installing: ${missing[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
