#!/usr/bin/env python3
"""Listing benchmark: ListObjectsV2 pages of 1000 over big trees, Strait with its listing index
against the same binary listing by readdir + sort on every request (server.listing_index =
false), over the same tree, in one run, interleaved (A B A B ...).

Workloads
- flat: one bucket, 1,000,000 empty files in its top directory; a page of 1000 keys starting
  after a random key.
- tree: one bucket of 100,000 directories (3 files each); a page of 1000 common prefixes with
  delimiter "/" starting after a random directory.

The trees are made once directly on the file system (as an HPC job would) under --work and
reused. Before measuring, `strait index rebuild --warm` builds the index offline (its time is
reported), and one full pass of the indexed server warms the page cache for both servers.

    python3 bench/listing.py [--work DIR] [--files N] [--dirs N] [--samples N] [--out bench/RESULTS.md]

Requests are signed with botocore's SigV4 signer and sent over one keep-alive connection; the
time is from sending the request to the last body byte (the XML is not parsed, only checked
for the expected number of entries).
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import os
import platform
import random
import re
import statistics
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

REPO = Path(__file__).resolve().parents[1]
AK, SK = "BENCHACCESSKEY", "bench-secret-key-0123456789"
LISTEN_RE = re.compile(r"strait: listening on http://(\S+?):(\d+)")


def make_trees(root: Path, files: int, dirs: int) -> None:
    flat = root / "flat"
    stamp = root / f".made-{files}-{dirs}"
    if stamp.exists():
        return
    print(f"making trees under {root} ...", flush=True)
    t = time.monotonic()
    flat.mkdir(parents=True, exist_ok=True)
    for i in range(files):
        os.close(os.open(flat / f"k{i:07d}", os.O_CREAT | os.O_WRONLY, 0o644))
    tree = root / "tree"
    tree.mkdir(exist_ok=True)
    for i in range(dirs):
        d = tree / f"d{i:06d}"
        d.mkdir(exist_ok=True)
        for j in range(3):
            os.close(os.open(d / f"f{j}", os.O_CREAT | os.O_WRONLY, 0o644))
    stamp.touch()
    print(f"  made in {time.monotonic() - t:.0f} s", flush=True)


class Lister:
    """SigV4-signed ListObjectsV2 requests over one keep-alive connection."""

    def __init__(self, host: str, port: int, access_key: str = AK, secret_key: str = SK):
        self.host, self.port = host, port
        self.conn = http.client.HTTPConnection(host, port, timeout=600)
        self.creds = Credentials(access_key, secret_key)

    def list_page(self, bucket: str, **params) -> tuple[float, bytes]:
        query = urllib.parse.urlencode(sorted({"list-type": "2", **params}.items()), quote_via=urllib.parse.quote)
        url = f"http://{self.host}:{self.port}/{bucket}?{query}"
        req = AWSRequest(method="GET", url=url, headers={"x-amz-content-sha256": "UNSIGNED-PAYLOAD"})
        SigV4Auth(self.creds, "s3", "us-east-1").add_auth(req)
        t = time.perf_counter()
        self.conn.request("GET", f"/{bucket}?{query}", headers=dict(req.headers.items()))
        r = self.conn.getresponse()
        body = r.read()
        dt_ = time.perf_counter() - t
        assert r.status == 200, body[:500]
        return dt_, body


class Server(Lister):
    def __init__(self, binary: str, root: Path, state: Path, index: bool, log: Path):
        cfg = state.with_suffix(".toml")
        cfg.write_text(f"[server]\nlisting_index = {'true' if index else 'false'}\n")
        env = dict(os.environ, STRAIT_ROOT_ACCESS_KEY=AK, STRAIT_ROOT_SECRET_KEY=SK, RUST_LOG="warn")
        self.proc = subprocess.Popen([binary, "serve", "--root", str(root), "--state-dir", str(state),
                                      "--listen", "127.0.0.1:0", "--config", str(cfg)],
                                     stdout=open(log, "wb"), stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        while not (m := LISTEN_RE.search(log.read_text(errors="replace"))):
            assert self.proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.05)
        super().__init__(m.group(1), int(m.group(2)))

    def stop(self) -> None:
        self.conn.close()
        self.proc.terminate()
        self.proc.wait(timeout=60)


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--work", default=os.path.expanduser("~/.cache/strait/bench-listing"))
    ap.add_argument("--binary", default=os.path.join(os.environ.get("CARGO_TARGET_DIR", os.path.expanduser(
        "~/.cache/strait/target")), "release", "strait"))
    ap.add_argument("--files", type=int, default=1_000_000)
    ap.add_argument("--dirs", type=int, default=100_000)
    ap.add_argument("--samples", type=int, default=200, help="indexed requests per workload")
    ap.add_argument("--baseline-samples", type=int, default=10, help="readdir+sort requests per workload")
    ap.add_argument("--added", type=int, default=10_000,
                    help="files then added directly to the flat directory (0: skip that measurement)")
    ap.add_argument("--out", default=str(REPO / "bench" / "RESULTS.md"))
    a = ap.parse_args()
    work = Path(a.work)
    root = work / "root"
    make_trees(root, a.files, a.dirs)
    state_ix, state_rd = work / "state-index", work / "state-readdir"
    for s in (state_ix, state_rd):
        s.mkdir(parents=True, exist_ok=True)

    t = time.monotonic()
    r = subprocess.run([a.binary, "index", "rebuild", "--warm", "--root", str(root), "--state-dir", str(state_ix)],
                       capture_output=True, text=True, env=dict(os.environ, STRAIT_ROOT_ACCESS_KEY=AK,
                                                                STRAIT_ROOT_SECRET_KEY=SK))
    build_s = time.monotonic() - t
    assert r.returncode == 0, r.stdout + r.stderr
    print(f"index rebuild --warm: {build_s:.1f} s\n{r.stdout}", flush=True)

    ix = Server(a.binary, root, state_ix, True, work / "index.log")
    rd = Server(a.binary, root, state_rd, False, work / "readdir.log")
    rng = random.Random(42)
    results = {}
    try:
        workloads = {
            "flat": ("flat", lambda: {"max-keys": "1000", "start-after": f"k{rng.randrange(a.files - 1000):07d}"},
                     b"<Key>", 1000),
            "tree": ("tree", lambda: {"max-keys": "1000", "delimiter": "/",
                                      "start-after": f"d{rng.randrange(a.dirs - 1000):06d}/"},
                     b"<Prefix>d", 1000),
        }
        for name, (bucket, params, marker, want) in workloads.items():
            ix.list_page(bucket, **params())  # warm-up
            rd.list_page(bucket, **params())
            times = {"index": [], "readdir": []}
            n_rd = 0
            for i in range(a.samples):
                p = params()
                d, body = ix.list_page(bucket, **p)
                assert body.count(marker) == want, (name, body.count(marker))
                times["index"].append(d)
                # Interleave the (slow) baseline: spread its samples across the run.
                if n_rd < a.baseline_samples and i % max(1, a.samples // a.baseline_samples) == 0:
                    d, body2 = rd.list_page(bucket, **p)
                    assert body2.count(marker) == want
                    assert body2 == body or _same_entries(body, body2, marker), "servers disagree"
                    times["readdir"].append(d)
                    n_rd += 1
            results[name] = times
            ix_p50, rd_p50 = statistics.median(times["index"]), statistics.median(times["readdir"])
            print(f"{name}: index p50 {ix_p50 * 1000:.1f} ms p99 {pct(times['index'], 99) * 1000:.1f} ms; "
                  f"readdir+sort p50 {rd_p50 * 1000:.1f} ms p99 {pct(times['readdir'], 99) * 1000:.1f} ms; "
                  f"ratio {rd_p50 / ix_p50:.0f}x", flush=True)
        if a.added:
            results["added"] = after_direct_adds(ix, rd, root / "flat", a.files, a.added)
    finally:
        ix.stop()
        rd.stop()

    write_results(a, results, build_s)
    return 0


def after_direct_adds(ix: Server, rd: Server, flat: Path, files: int, added: int) -> dict:
    """Add files directly to the flat directory, as a job would, then list the page where they
    start: the first listing re-reads the changed directory (the new keys must be on it); the
    directory stays unstamped for 2 s after a change (RACY_NS), then its new snapshot is trusted."""
    names = [f"m{i:07d}" for i in range(added)]
    half = 500
    p = {"max-keys": "1000", "start-after": f"k{files - half - 1:07d}"}
    ix.list_page("flat", **p)  # the snapshot is trusted before the change
    try:
        for n in names:
            os.close(os.open(flat / n, os.O_CREAT | os.O_WRONLY, 0o644))
        first, body = ix.list_page("flat", **p)
        assert body.count(b"<Key>m") == half, body.count(b"<Key>m")
        time.sleep(2.2)
        ix.list_page("flat", **p)  # re-read once more, now stamped
        settled = [ix.list_page("flat", **p)[0] for _ in range(20)]
        d, body2 = rd.list_page("flat", **p)
        assert body2.count(b"<Key>m") == half
        return {"first": first, "settled": settled, "readdir": d}
    finally:
        for n in names:
            os.unlink(flat / n)


def _same_entries(a: bytes, b: bytes, marker: bytes) -> bool:
    """Same keys/prefixes in the same order (request ids and timestamps differ)."""
    tag = marker[1:].split(b">")[0]
    pat = re.compile(b"<" + tag + b">([^<]*)</" + tag + b">")
    return pat.findall(a) == pat.findall(b)


def write_results(a, results: dict, build_s: float) -> None:
    cpu = "unknown"
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    lines = [
        "",
        f"## Listing: ListObjectsV2 pages of 1000 ({dt.date.today().isoformat()})",
        "",
        f"Machine: {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}, "
        f"file system of the tree: {fs_type(Path(a.work))}. Binary: `{Path(a.binary).parent.name}` build. "
        f"Command: `python3 bench/listing.py` (files={a.files}, dirs={a.dirs}).",
        "",
        f"Index built offline by `strait index rebuild --warm` in {build_s:.1f} s for "
        f"{a.files + 3 * a.dirs} files in {a.dirs + 2} directories.",
        "",
        "| workload | Strait, listing index p50 / p99 (ms) | same binary, readdir+sort per request p50 / p99 (ms) | ratio of p50s | samples |",
        "|---|---|---|---|---|",
    ]
    labels = {"flat": f"flat: {a.files:,} files in one directory",
              "tree": f"delimiter `/` over {a.dirs:,} directories"}
    added = results.pop("added", None)
    for name, t in results.items():
        i, r = t["index"], t["readdir"]
        lines.append(f"| {labels[name]} | {statistics.median(i) * 1000:.1f} / {pct(i, 99) * 1000:.1f} | "
                     f"{statistics.median(r) * 1000:.0f} / {pct(r, 99) * 1000:.0f} | "
                     f"{statistics.median(r) / statistics.median(i):.0f}x | {len(i)} / {len(r)} |")
    lines.append("")
    if added:
        st = added["settled"]
        lines += [
            f"After {a.added:,} files were added directly to the flat directory (the page where they start: "
            f"500 old keys, 500 new): first listing {added['first'] * 1000:.0f} ms (re-reads the changed "
            f"{a.files + a.added:,}-entry directory and records the additions; the new keys are on it), "
            f"then, once the directory's snapshot is stamped again (2 s after the change), p50 "
            f"{statistics.median(st) * 1000:.1f} ms over {len(st)} requests; readdir+sort "
            f"{added['readdir'] * 1000:.0f} ms.",
            "",
        ]
    with open(a.out, "a") as f:
        f.write("\n".join(lines) + "\n")
    print(f"appended to {a.out}")


def fs_type(p: Path) -> str:
    try:
        out = subprocess.run(["df", "-T", str(p)], capture_output=True, text=True).stdout.splitlines()[-1]
        return out.split()[1]
    except Exception:  # noqa: BLE001
        return "unknown"


if __name__ == "__main__":
    sys.exit(main())
