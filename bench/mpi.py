#!/usr/bin/env python3
"""MPI benchmark: 4 ranks read one 1 GiB object collectively, five ways, interleaved
(A B C D E A B C D E ...), in one run:

  romio   MPI_File_read_at_all with ROMIO on the object's file (the baseline): rank r reads
          block r of 4
  direct  strait_read_at_all, direct path (lease, then pread of the same file)
  http    strait_read_at_all, http path, default hints (the ranks' blocks do not overlap, so
          each rank GETs its own block: ROMIO's rule for romio_cb_read=automatic)
  http-cb strait_read_at_all, http path with romio_cb_read=enable (aggregators' ranged GETs in
          rounds + MPI redistribution)
  same    strait_read_all_same over http: every rank needs the whole object (read once,
          broadcast)
  naive   every rank GETs the whole object itself (strait_read_at over http)

The object is written once into a bucket directory of Strait's root (as a job would write it),
so it is in the page cache for every mode: this measures the software paths, not a disk.
Targets (issue 7): direct >= 0.9x romio, http >= 0.5x romio, same >= 1.5x naive with 4x fewer
GETs.

    python bench/mpi.py [--mpi mpich|openmpi] [--rounds N] [--size-mib N] [--out bench/RESULTS.md | -]

Needs the release builds: `cargo build --release -p strait-gateway -p strait-mpi` (the script
runs `make -C mpi-shim PROFILE=release`), and MPI from Debian (openmpi-bin libopenmpi-dev mpich
libmpich-dev).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

import strait_server

REPO = Path(__file__).resolve().parents[1]
AK, SK = "BENCHMPIACCESSKEY001", "bench-mpi-secret-0123456789abcdef"
BUCKET, KEY = "bench", "mpi/object.bin"
MIB = 1 << 20
NP = 4
MPIS = {
    "mpich": ("mpicc.mpich", "mpirun.mpich", [], {}),
    "openmpi": ("mpicc.openmpi", "mpirun.openmpi", ["--oversubscribe", "--mca", "io", "romio321"],
                {"OMPI_ALLOW_RUN_AS_ROOT": "1", "OMPI_ALLOW_RUN_AS_ROOT_CONFIRM": "1"}),
}
MODES = ["romio", "direct", "http", "http-cb", "same", "naive"]


def main() -> int:
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/strait/target"))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(target, "release", "strait"))
    ap.add_argument("--mpi", choices=sorted(MPIS), default="mpich")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--work", default=os.path.expanduser("~/.cache/strait/bench-mpi"))
    ap.add_argument("--out", default=str(REPO / "bench" / "RESULTS.md"), help="'-': print only")
    a = ap.parse_args()
    cc, run, flags, env_mpi = MPIS[a.mpi]
    work = Path(a.work)
    build = work / f"build-{a.mpi}"
    env = dict(os.environ, CARGO_TARGET_DIR=target)
    subprocess.run(["make", "-s", "-C", str(REPO / "mpi-shim"), f"MPICC={cc}", "PROFILE=release", f"BUILD={build}"],
                   check=True, env=env)
    libs = subprocess.run(["make", "-s", "-C", str(REPO / "mpi-shim"), "libs"], check=True, capture_output=True,
                          text=True).stdout.split()
    exe = build / "mpi_bench"
    subprocess.run([cc, "-O2", str(REPO / "bench" / "mpi_bench.c"), f"-I{REPO / 'mpi-shim/include'}", f"-L{build}",
                    *libs, "-o", str(exe)], check=True)

    root, state = work / "root", work / "state"
    path = root / BUCKET / KEY
    size = a.size_mib * MIB
    if not path.exists() or path.stat().st_size != size:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            for _ in range(a.size_mib):
                f.write(os.urandom(MIB))
    state.mkdir(parents=True, exist_ok=True)
    proc, url = strait_server.start(a.binary, root, work / "strait.log", AK, SK, state_dir=state)
    run_env = dict(os.environ, **env_mpi, STRAIT_ENDPOINT=url, AWS_ACCESS_KEY_ID=AK, AWS_SECRET_ACCESS_KEY=SK)
    name = f"s3://{BUCKET}/{KEY}"
    argv = {
        "romio": ["romio", str(path)],
        "direct": ["direct", name, "strait_path=direct"],
        "http": ["http", name, "strait_path=http"],
        "http-cb": ["http", name, "strait_path=http", "romio_cb_read=enable"],
        "same": ["same", name, "strait_path=http"],
        "naive": ["naive", name, "strait_path=http"],
    }
    times: dict = {m_: [] for m_ in MODES}
    reqs: dict = {}
    try:
        with open(path, "rb") as f:  # into the page cache
            while f.read(64 * MIB):
                pass
        for r in range(a.rounds + 1):  # round 0 is a warm-up
            for mode in MODES:
                out = subprocess.run([run, "-np", str(NP), *flags, str(exe), *argv[mode]], capture_output=True,
                                     text=True, env=run_env, timeout=600)
                if out.returncode != 0:
                    raise SystemExit(f"{mode}: exit {out.returncode}\n{out.stdout}\n{out.stderr}")
                res = json.loads(next(ln for ln in out.stdout.splitlines() if ln.startswith("{")))
                if r:
                    times[mode].append(res["seconds"])
                reqs[mode] = res["requests"]
            if r:
                print(f"round {r}: " + ", ".join(f"{m_} {times[m_][-1]:.3f}s" for m_ in MODES), flush=True)
    finally:
        proc.terminate()
        proc.wait()
    med = {m_: statistics.median(t) for m_, t in times.items()}
    lines = render(a, size, med, reqs, times)
    print("\n".join(lines))
    if a.out != "-":
        with open(a.out, "a") as f:
            f.write("\n".join(lines) + "\n")
        print(f"appended to {a.out}")
    return 0


def render(a, size: int, med: dict, reqs: dict, times: dict) -> list[str]:
    cpu = "unknown"
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    ver = subprocess.run([MPIS[a.mpi][1], "--version"], capture_output=True, text=True).stdout.strip().splitlines()
    ver = next((v.split(":", 1)[1] for v in ver if v.strip().startswith("Version:")),
               next((v for v in ver if v.strip()), a.mpi))  # MPICH prints "Version: 4.0.2" lines
    gib = size / (1 << 30)
    rate = {m_: (gib if m_ in ("romio", "direct", "http", "http-cb") else NP * gib) / med[m_] for m_ in MODES}
    lines = [
        "",
        f"## MPI shim: 4 ranks, one {size // MIB} MiB object ({dt.date.today().isoformat()})",
        "",
        f"Machine: {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}. MPI: {a.mpi} "
        f"({ver.strip()}); the baseline is ROMIO's MPI_File_read_at_all"
        f"{' (Open MPI with --mca io romio321)' if a.mpi == 'openmpi' else ' (MPICH ROMIO, its default)'}. "
        f"Release builds; the object's file in the page cache; {a.rounds} interleaved rounds after a warm-up, "
        f"medians (the slowest rank's time). Command: `python bench/mpi.py --mpi {a.mpi}`.",
        "",
        "| mode | seconds (median) | GiB/s delivered | GETs (all ranks) | ratio | target |",
        "|---|---|---|---|---|---|",
    ]
    target = {"direct": ("romio", 0.9), "http": ("romio", 0.5), "http-cb": ("romio", 0.5), "same": ("naive", 1.5)}
    for m_ in MODES:
        ratio, tgt = "", ""
        if m_ in target:
            base, want = target[m_]
            x = med[base] / med[m_] if m_ == "same" else rate[m_] / rate[base]
            ratio = f"{x:.2f}× {base}"
            tgt = f"≥ {want}× {'met' if x >= want else 'NOT met'}"
        g = reqs.get(m_, 0)
        gets = "–" if m_ == "romio" else str(g)
        lines.append(f"| {m_} | {med[m_]:.3f} | {rate[m_]:.2f} | {gets} | {ratio} | {tgt} |")
    lines.append("")
    lines.append("GiB/s delivered: bytes that reached rank buffers per second (same and naive deliver the whole "
                 "object to each of the 4 ranks). GETs: HTTP requests the ranks sent during the timed read "
                 "(the lease is sent at open, before the timer).")
    lines.append("")
    return lines


if __name__ == "__main__":
    sys.exit(main())
