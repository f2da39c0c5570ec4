#!/usr/bin/env python3
"""PUT latency as a bucket fills: 4 KiB PUTs into one flat bucket from empty to 1,000,000
objects, in windows of 100,000, Strait beside nginx's dav PUT filling its own directory on the
same file system (the ceiling: what the file system itself does as a directory grows), windows
interleaved (Strait window k, nginx window k, ...).

Each window is one strait-loadgen run (--workload small --op put, a fresh key range per window,
the same concurrency throughout); its p50/p99 are over that window's requests only, so window
k's figures are the latency at k x 100,000 objects already in the bucket. The flatness figure
is each window's p50 (and p99) over the first window's. Strait fsyncs every object before
answering (grouped syncs); nginx does not fsync.

After the fill, one full ListObjectsV2 pass (pages of 1000) over Strait's bucket builds its
listing index; the pass's time and the state directory's size per object are reported.

    python3 bench/fill.py [--objects 1000000] [--window 100000] [--concurrency 16] [--size 4KiB]
                          [--targets strait,strait-named,nginx] [--work DIR] [--keep] [--record]

Needs the release builds (cargo build --release -p strait-gateway -p strait-loadgen) and, for
the nginx side, nginx (apt-get install nginx; installed on demand as in bench/peers.py). About
1M x 4 KiB x 2 = 8 GiB of disk under --work, removed at the end unless --keep.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parent))
import listing  # noqa: E402
import peers  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


def start(name: str, a, root: Path, work: Path) -> peers.Server:
    if name in ("strait", "strait-named"):
        ns = SimpleNamespace(strait_bin=a.strait_bin)
        return peers.STARTERS[name](ns, root, work)
    ns = SimpleNamespace(nginx_bin=a.nginx_bin)
    return peers.start_nginx(ns, root, work)


def fill_window(a, srv: peers.Server, k: int) -> dict:
    args = ["--workload", "small", "--op", "put", "--size", str(a.size), "--concurrency", str(a.concurrency),
            "--keys", str(a.window), "--ops", str(a.window), "--prefix", f"w{k:03d}-"]
    r = peers.loadgen(SimpleNamespace(loadgen_bin=a.loadgen_bin, timeout=a.timeout), srv, args)
    if r.get("errors"):
        raise SystemExit(f"{srv.name} window {k}: {r.get('errors')} errors: {r.get('stderr')}")
    return r


def full_listing(url: str, bucket: str, want: int) -> tuple[float, list[float]]:
    """One pass over the bucket in pages of 1000; total seconds and each page's seconds."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    lister = listing.Lister(host, int(port), peers.AK, peers.SK)
    pages: list[float] = []
    seen, after = 0, ""
    t0 = time.perf_counter()
    while True:
        params = {"max-keys": "1000"}
        if after:
            params["start-after"] = after
        d, body = lister.list_page(bucket, **params)
        pages.append(d)
        keys = listing.re.findall(rb"<Key>([^<]*)</Key>", body)
        seen += len(keys)
        if len(keys) < 1000:
            break
        after = keys[-1].decode()
    total = time.perf_counter() - t0
    lister.conn.close()
    if seen != want:
        raise SystemExit(f"full listing saw {seen} keys, expected {want}")
    return total, pages


def du_bytes(p: Path) -> int:
    return int(subprocess.run(["du", "-sb", str(p)], capture_output=True, text=True).stdout.split()[0])


def main() -> int:
    target_dir = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/strait/target"))
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=1_000_000)
    ap.add_argument("--window", type=int, default=100_000)
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--size", type=peers.parse_size, default=4096)
    ap.add_argument("--targets", default="strait,nginx")
    ap.add_argument("--work", default=os.path.expanduser("~/.cache/strait/bench-fill"))
    ap.add_argument("--strait-bin", default=os.environ.get("STRAIT_BIN") or os.path.join(target_dir, "release",
                                                                                          "strait"))
    ap.add_argument("--loadgen-bin", default=os.path.join(target_dir, "release", "strait-loadgen"))
    ap.add_argument("--nginx-bin", default="/usr/sbin/nginx")
    ap.add_argument("--timeout", type=int, default=1800)
    ap.add_argument("--keep", action="store_true", help="keep the filled directories")
    ap.add_argument("--record", action="store_true", help="append the report to bench/RESULTS.md")
    ap.add_argument("--out", default=str(REPO / "bench" / "RESULTS.md"))
    a = ap.parse_args()
    if a.objects % a.window:
        ap.error("--objects must be a multiple of --window")
    targets = [t.strip() for t in a.targets.split(",") if t.strip()]
    if "strait" not in targets or any(t not in ("strait", "strait-named", "nginx") for t in targets):
        ap.error("--targets: strait, optionally strait-named (the same binary with --staging named) and nginx")
    windows = a.objects // a.window

    work = Path(a.work)
    shutil.rmtree(work, ignore_errors=True)
    servers: dict[str, peers.Server] = {}
    dirs: dict[str, Path] = {}
    results: dict[str, list[dict]] = {t: [] for t in targets}
    listed = None
    try:
        for t in targets:
            tw = work / t
            (tw / "root" / peers.BUCKET).mkdir(parents=True)
            dirs[t] = tw / "root" / peers.BUCKET
            servers[t] = start(t, a, tw / "root", tw)
        for k in range(windows):
            for t in targets:
                r = fill_window(a, servers[t], k)
                results[t].append(r)
                peers.log(f"{t} window {k} ({k * a.window:,} -> {(k + 1) * a.window:,}): "
                          f"{r['ops_per_s']:.0f} PUT/s, p50 {r['p50_ms']:.2f} ms, p99 {r['p99_ms']:.2f} ms, "
                          f"server CPU {r['server_cpu_s'] / r['ops'] * 1e3:.3f} ms/PUT")
        listed = full_listing(servers["strait"].url, peers.BUCKET, a.objects)
        peers.log(f"full listing of {a.objects:,} keys: {listed[0]:.1f} s, page p50 "
                  f"{statistics.median(listed[1]) * 1e3:.1f} ms")
    finally:
        for s in servers.values():
            s.stop()
    state = du_bytes(work / "strait" / "strait-state") if listed else 0
    report = render(a, servers, results, listed, state)
    print(report)
    if a.record:
        with open(a.out, "a") as f:
            f.write(report + "\n")
        print(f"appended to {a.out}")
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


def render(a, servers, results, listed, state: int) -> str:
    cpu = "unknown"
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    targets = list(results)
    lines = [
        "",
        f"## PUT latency as a bucket fills, 0 to {a.objects:,} objects ({dt.date.today().isoformat()})",
        "",
        f"Machine: {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}, file system: "
        f"{peers.fs_type(Path(a.work))}. Command: `python3 bench/fill.py` ({peers.human(a.size)} objects, "
        f"concurrency {a.concurrency}, windows of {a.window:,} PUTs, one flat directory per target).",
        "",
        "Targets: " + "; ".join(f"**{peers.TARGETS[t]}**: {servers[t].version}" for t in targets) + ". "
        "Strait fsyncs each object (file and directory, grouped) before answering; nginx dav does not fsync.",
        "",
        "| objects before the window | " + " | ".join(
            f"{peers.TARGETS[t]} PUT/s | p50 / p99 (ms) | p50, p99 × first window" for t in targets) + " |",
        "|---|" + "---|---|---|" * len(targets),
    ]
    for k in range(len(results[targets[0]])):
        row = [f"{k * a.window:,}"]
        for t in targets:
            r, r0 = results[t][k], results[t][0]
            row += [f"{r['ops_per_s']:.0f}", f"{r['p50_ms']:.2f} / {r['p99_ms']:.2f}",
                    f"{r['p50_ms'] / r0['p50_ms']:.2f}, {r['p99_ms'] / r0['p99_ms']:.2f}"]
        lines.append("| " + " | ".join(row) + " |")
    lines.append("")
    s = results["strait"]
    worst50 = max(r["p50_ms"] for r in s) / s[0]["p50_ms"]
    worst99 = max(r["p99_ms"] for r in s) / s[0]["p99_ms"]
    cpu_ms = [r["server_cpu_s"] / r["ops"] * 1e3 for r in s]
    lines.append(f"Strait: largest window p50 {worst50:.2f}× the first window's (p99 {worst99:.2f}×); "
                 f"server CPU per PUT {cpu_ms[0]:.3f} ms in the first window, {cpu_ms[-1]:.3f} ms in the last; "
                 f"peak RSS {max(r['server_hwm_kib'] for r in s) / 1024:.0f} MiB.")
    if "strait-named" in results:
        m = results["strait-named"]
        lines.append(f"Strait with named staging: largest window p50 "
                     f"{max(r['p50_ms'] for r in m) / m[0]['p50_ms']:.2f}× its first window's (p99 "
                     f"{max(r['p99_ms'] for r in m) / m[0]['p99_ms']:.2f}×); server CPU per PUT "
                     f"{m[0]['server_cpu_s'] / m[0]['ops'] * 1e3:.3f} ms in the first window, "
                     f"{m[-1]['server_cpu_s'] / m[-1]['ops'] * 1e3:.3f} ms in the last.")
    if "nginx" in results:
        n = results["nginx"]
        rel = max((r["p50_ms"] / s[0]["p50_ms"]) / (m["p50_ms"] / n[0]["p50_ms"]) for r, m in zip(s, n))
        lines.append(f"nginx: largest window p50 {max(r['p50_ms'] for r in n) / n[0]['p50_ms']:.2f}× its first "
                     f"window's (p99 {max(r['p99_ms'] for r in n) / n[0]['p99_ms']:.2f}×); per window, Strait's "
                     f"p50 growth over nginx's at most {rel:.2f}×.")
    if listed:
        total, pages = listed
        lines.append(f"Then one full listing of the {a.objects:,} keys through Strait (pages of 1000, building "
                     f"the listing index): {total:.1f} s, first page {pages[0] * 1e3:.0f} ms (reads and sorts "
                     f"the directory), page p50 {statistics.median(pages) * 1e3:.1f} ms. Strait's state directory "
                     f"afterwards (RocksDB: staging journal, listing index): {state / 2**20:.0f} MiB, "
                     f"{state / a.objects:.0f} B per object.")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
