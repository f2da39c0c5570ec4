#!/usr/bin/env python3
"""Memory over time under mixed load: the gateway's RSS sampled every few seconds while
strait-loadgen runs, all at once and in loops, 4 KiB PUT/GET/HEAD at concurrency 16, 64 MiB
PUTs and GETs (2 streams), 8 MiB ranged GETs and 64 MiB multipart uploads. The question is
whether memory grows with time (a leak) rather than how much is used: compare the RSS of the
first minute after warm-up with that of the last minute.

    python bench/soak.py [--minutes 10] [--record]
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import statistics
import subprocess
import threading
import time
from pathlib import Path

import strait_server

AK, SK = "BENCHSOAKACCESSKEY01", "bench-soak-secret-0123456789abcdefgh"
REPO = Path(__file__).resolve().parent.parent


def main() -> int:
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/strait/target"))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.path.join(target, "release", "strait"))
    ap.add_argument("--loadgen", default=os.path.join(target, "release", "strait-loadgen"))
    ap.add_argument("--minutes", type=float, default=10)
    ap.add_argument("--sample-secs", type=float, default=5)
    ap.add_argument("--work", default=os.path.expanduser("~/.cache/strait/bench-soak"))
    ap.add_argument("--loops", default="all",
                    help="comma-separated loops to run (small-put, small-get, small-head, put-large, get-large, "
                         "get-ranged, multipart) [all]")
    ap.add_argument("--record", action="store_true", help="append the report to bench/RESULTS.md")
    a = ap.parse_args()

    work = Path(a.work)
    shutil.rmtree(work, ignore_errors=True)
    (work / "root" / "bench").mkdir(parents=True)
    proc, url = strait_server.start(a.binary, work / "root", work / "strait.log", AK, SK,
                                    extra_args=["--admin-listen", "127.0.0.1:0"])
    admin = strait_server.admin_url(work / "strait.log")
    base = [a.loadgen, "--endpoint", url, "--access-key", AK, "--secret-key", SK, "--bucket", "bench"]
    run = lambda *args: subprocess.run(base + list(args), capture_output=True, text=True)  # noqa: E731
    # Fixtures: the 4 KiB keys and the large objects the GET loops read.
    for args in (["--workload", "small", "--op", "put", "--concurrency", "16", "--ops", "1000", "--keys", "1000"],
                 ["--workload", "put-large", "--size", "64MiB", "--streams", "2", "--prefix", "big-"]):
        r = run(*args)
        if r.returncode != 0:
            raise SystemExit(f"fixture failed: {r.stdout}{r.stderr}")

    loops = {
        "small-put": ["--workload", "small", "--op", "put", "--concurrency", "16", "--duration", "5", "--keys", "1000"],
        "small-get": ["--workload", "small", "--op", "get", "--concurrency", "16", "--duration", "5", "--keys", "1000"],
        "small-head": ["--workload", "small", "--op", "head", "--concurrency", "16", "--duration", "5", "--keys", "1000"],
        "put-large": ["--workload", "put-large", "--size", "64MiB", "--streams", "2", "--prefix", "w-"],
        "get-large": ["--workload", "get-large", "--size", "64MiB", "--streams", "2", "--prefix", "big-"],
        "get-ranged": ["--workload", "get-ranged", "--size", "64MiB", "--concurrency", "4", "--key", "big-0"],
        "multipart": ["--workload", "multipart", "--size", "64MiB", "--part-size", "16MiB", "--concurrency", "2"],
    }
    if a.loops != "all":
        wanted = a.loops.split(",")
        unknown = set(wanted) - set(loops)
        if unknown:
            raise SystemExit(f"unknown loops: {', '.join(sorted(unknown))}")
        loops = {k: v for k, v in loops.items() if k in wanted}
    stop = time.monotonic() + a.minutes * 60
    counts = {k: 0 for k in loops}
    errors: list[str] = []

    def loop(name: str, args: list[str]) -> None:
        while time.monotonic() < stop:
            r = run(*args)
            counts[name] += 1
            if r.returncode != 0:
                errors.append(f"{name}: {r.stdout.strip()[:300]} {r.stderr.strip()[:300]}")

    threads = [threading.Thread(target=loop, args=(k, v), daemon=True) for k, v in loops.items()]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    samples: list[tuple[float, int]] = []
    # The metadata store's own memory (RocksDB write buffers + block cache), KiB, per sample.
    index_kib: list[tuple[float, int]] = []
    # RocksDB's SST readers (index and filter blocks, outside the block cache), and the live
    # bytes of the gateway's own heap (jemalloc's stats.allocated), KiB, per sample.
    readers_kib: list[tuple[float, int]] = []
    heap_kib: list[tuple[float, int]] = []
    jres_kib: list[tuple[float, int]] = []
    anon_kib: list[tuple[float, int]] = []
    file_kib: list[tuple[float, int]] = []
    while time.monotonic() < stop:
        t = time.monotonic() - t0
        samples.append((t, strait_server.status_kib(proc.pid, "VmRSS")))
        if admin:
            ix = strait_server.index_memory(admin)
            readers = ix.pop("table_readers", 0)
            index_kib.append((t, sum(ix.values()) // 1024))
            readers_kib.append((t, readers // 1024))
            heap = strait_server.gauges(admin, "strait_allocator_bytes", "kind")
            if "allocated" in heap:
                heap_kib.append((t, heap["allocated"] // 1024))
            if "resident" in heap:
                jres_kib.append((t, heap["resident"] // 1024))
        # RSS split: anonymous memory (heaps, stacks) against mapped file pages (the binary's
        # code as it is paged in, shared libraries).
        anon_kib.append((t, strait_server.status_kib(proc.pid, "RssAnon")))
        file_kib.append((t, strait_server.status_kib(proc.pid, "RssFile")))
        time.sleep(a.sample_secs)
    for t in threads:
        t.join()
    hwm = strait_server.status_kib(proc.pid, "VmHWM")
    proc.terminate()
    proc.wait(timeout=30)
    shutil.rmtree(work, ignore_errors=True)

    first = [r for t, r in samples if 60 <= t < 120] or [samples[0][1]]
    last = [r for t, r in samples if t >= samples[-1][0] - 60]
    per_min: dict[int, list[int]] = {}
    for t, r in samples:
        per_min.setdefault(int(t // 60), []).append(r)
    def by_minute(series: list[tuple[float, int]]) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {}
        for t, r in series:
            out.setdefault(int(t // 60), []).append(r)
        return out

    index_min, readers_min, heap_min = by_minute(index_kib), by_minute(readers_kib), by_minute(heap_kib)
    jres_min, anon_min, file_min = by_minute(jres_kib), by_minute(anon_kib), by_minute(file_kib)
    cpu = f"{os.cpu_count()} cores ({next((ln.split(':', 1)[1].strip() for ln in open('/proc/cpuinfo') if ln.startswith('model name')), '?')})"
    lines = [
        f"## Soak: gateway RSS over {a.minutes:g} minutes of mixed load ({dt.date.today()})",
        "",
        f"Machine: {cpu}, Linux {platform.release()}. Release build. Command: `python bench/soak.py --minutes {a.minutes:g}"
        + ("" if a.loops == "all" else f" --loops {a.loops}") + "`.",
        "All loops at once, each restarted as soon as it ends: " + ", ".join(f"{k} ×{v}" for k, v in counts.items())
        + f". Errors: {len(errors)}.",
        "",
        "Medians per minute, MiB: RSS and its split (anonymous, mapped files); RocksDB's write buffers + block "
        "cache and its table readers; the gateway's own heap as jemalloc sees it (live bytes, resident pages).",
        "",
        "| minute | RSS | RSS max | RssAnon | RssFile | RocksDB buffers + cache | RocksDB table readers "
        "| jemalloc allocated | jemalloc resident |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def med(series: dict[int, list[int]], m: int) -> str:
        v = series.get(m)
        return f"{statistics.median(v) / 1024:.1f}" if v else "–"

    for m, rs in sorted(per_min.items()):
        lines.append(f"| {m} | {statistics.median(rs) / 1024:.0f} | {max(rs) / 1024:.0f} | {med(anon_min, m)} "
                     f"| {med(file_min, m)} | {med(index_min, m)} | {med(readers_min, m)} | {med(heap_min, m)} "
                     f"| {med(jres_min, m)} |")
    growth = statistics.median(last) / statistics.median(first)
    lines += [
        "",
        f"Second minute median {statistics.median(first) / 1024:.0f} MiB, last minute median "
        f"{statistics.median(last) / 1024:.0f} MiB (× {growth:.2f}); peak (VmHWM) {hwm / 1024:.0f} MiB.",
        "",
    ]
    report = "\n".join(lines)
    print(report)
    for e in errors[:10]:
        print("error:", e)
    if a.record:
        with open(REPO / "bench" / "RESULTS.md", "a") as f:
            f.write("\n" + report + "\n")
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
