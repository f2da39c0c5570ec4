#!/usr/bin/env python3
"""DataLoader benchmark: samples/s through torch.utils.data.DataLoader (2 workers) reading the
same files four ways, interleaved (A B C D A B C D ...), in one run:

  A  Strait, through s3torchconnector's S3MapDataset (the CRT client; signed GETs)
  B  the local disk, a plain Dataset doing open() + read()
  C  nginx (sendfile on) serving the same directory, a Dataset doing keep-alive GETs (http.client)
  D  Strait through the Dataset of C, with presigned URLs made beforehand: the same client as
     nginx, so C/D compares the servers alone, and A/D shows the cost of the CRT client
  E  nginx through A's client: s3torchconnector's S3MapDataset.from_objects with nginx as the
     endpoint (nginx ignores the signature and answers the CRT's ranged GETs and If-Match), so
     A/E compares the servers under the client the issue names

Two workloads: 64 KiB samples (batches of 32) and 8 MiB samples (batches of 4). The files are
written once directly into a bucket directory of Strait's root (as a job on the file system would;
Strait serves them as objects) and nginx serves that root. Each system gets a warm-up epoch (the
files end in the page cache), then --rounds measured epochs; figures are medians of those.

Runs under the torch venv (scripts/install-torch-env.sh) and needs nginx (apt-get install nginx):

    ~/.cache/strait/torch-venv/bin/python bench/dataloader.py [--binary PATH] [--rounds N]
        [--small N] [--large N] [--work DIR] [--out bench/RESULTS.md | --out -]

Client, servers and the two DataLoader workers share the machine's cores: this measures the
whole pipeline on one host, as on a single training node reading a local gateway.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import os
import platform
import re
import shutil
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

REPO = Path(__file__).resolve().parents[1]
AK, SK = "BENCHDATALOADERKEY01", "bench-dataloader-secret-0123456789"
REGION = "us-east-1"
BUCKET = "bench"
LISTEN_RE = re.compile(r"strait: listening on http://(\S+?):(\d+)")
KIB, MIB = 1024, 1024 * 1024
WORKERS = 2
SYSTEMS = {
    "strait": "Strait, s3torchconnector",
    "disk": "local disk, plain Dataset",
    "nginx": "nginx, http.client",
    "strait-http": "Strait, presigned http.client",
    "nginx-s3tc": "nginx, s3torchconnector",
}


def to_tensor(data: bytes) -> torch.Tensor:
    """Every system ends the same way: the bytes as a uint8 tensor (a copy, as decoding makes)."""
    return torch.frombuffer(bytearray(data), dtype=torch.uint8)


def reader_to_tensor(reader) -> torch.Tensor:
    return to_tensor(reader.read())


class FileDataset(Dataset):
    def __init__(self, paths: list[Path]):
        self.paths = paths

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> torch.Tensor:
        with open(self.paths[i], "rb") as f:
            return to_tensor(f.read())


class HTTPDataset(Dataset):
    """GET host:port + targets[i] over one keep-alive connection per worker process."""

    def __init__(self, host: str, port: int, targets: list[str]):
        self.host, self.port, self.targets = host, port, targets
        self._conn, self._pid = None, None

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, i: int) -> torch.Tensor:
        if self._pid != os.getpid():
            self._conn, self._pid = http.client.HTTPConnection(self.host, self.port, timeout=120), os.getpid()
        self._conn.request("GET", self.targets[i])
        resp = self._conn.getresponse()
        body = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"GET {self.targets[i]}: {resp.status} {body[:300]!r}")
        return to_tensor(body)


# ---------------------------------------------------------------------------------------------
# Data and servers
# ---------------------------------------------------------------------------------------------


def make_files(bucket_dir: Path, name: str, count: int, size: int) -> list[Path]:
    d = bucket_dir / name
    d.mkdir(parents=True, exist_ok=True)
    paths = [d / f"sample-{i:05d}.bin" for i in range(count)]
    for p in paths:
        if not (p.exists() and p.stat().st_size == size):
            p.write_bytes(os.urandom(size))
    return paths


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Strait:
    def __init__(self, binary: str, root: Path, state: Path, log: Path):
        env = dict(os.environ, STRAIT_ROOT_ACCESS_KEY=AK, STRAIT_ROOT_SECRET_KEY=SK, RUST_LOG="warn")
        self.proc = subprocess.Popen([binary, "serve", "--root", str(root), "--state-dir", str(state),
                                      "--listen", "127.0.0.1:0"],
                                     stdout=open(log, "wb"), stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        while not (m := LISTEN_RE.search(log.read_text(errors="replace"))):
            assert self.proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.05)
        self.host, self.port = m.group(1), int(m.group(2))
        self.url = f"http://{self.host}:{self.port}"

    def presign(self, key: str) -> str:
        from botocore.auth import S3SigV4QueryAuth
        from botocore.awsrequest import AWSRequest
        from botocore.credentials import Credentials

        req = AWSRequest(method="GET", url=f"{self.url}/{BUCKET}/{key}")
        S3SigV4QueryAuth(Credentials(AK, SK), "s3", REGION, expires=3600).add_auth(req)
        return req.url[len(self.url):]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=60)


class Nginx:
    """nginx in the foreground on 127.0.0.1 with a generated config: static files, sendfile."""

    def __init__(self, root: Path, work: Path):
        binary = shutil.which("nginx") or "/usr/sbin/nginx"
        if not os.access(binary, os.X_OK):
            sys.exit("nginx not found: apt-get install -y --no-install-recommends nginx")
        self.port = free_port()
        prefix = work / "nginx"
        for d in ("tmp", "logs"):
            (prefix / d).mkdir(parents=True, exist_ok=True)
        tmp = prefix / "tmp"
        conf = prefix / "nginx.conf"
        # As root, nginx's workers would run as nobody, who cannot read under ~root/.cache.
        user = "user root;" if os.geteuid() == 0 else ""
        conf.write_text(f"""
daemon off;
{user}
worker_processes auto;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 120;
    keepalive_requests 1000000;
    default_type application/octet-stream;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen 127.0.0.1:{self.port};
        root {root};
        location / {{ }}
    }}
}}
""")
        self.proc = subprocess.Popen([binary, "-p", str(prefix), "-c", str(conf)],
                                     stdout=subprocess.DEVNULL, stderr=open(prefix / "logs" / "stderr.log", "wb"))
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                break
            except OSError:
                assert self.proc.poll() is None and time.monotonic() < deadline, \
                    (prefix / "logs" / "stderr.log").read_text()[-2000:]
                time.sleep(0.05)
        self.version = subprocess.run([binary, "-v"], capture_output=True, text=True).stderr.strip()

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------


def epoch(loader: DataLoader, want_bytes: int) -> float:
    """One pass over the loader; returns the seconds it took (checks the bytes delivered)."""
    t = time.perf_counter()
    got = 0
    for batch in loader:
        got += batch.numel()
    elapsed = time.perf_counter() - t
    assert got == want_bytes, f"delivered {got} bytes, want {want_bytes}"
    return elapsed


def make_loaders(name: str, paths: list[Path], strait: Strait, nginx: Nginx, batch: int) -> dict:
    from s3torchconnector import S3ClientConfig, S3MapDataset

    keys = [f"{name}/{p.name}" for p in paths]
    datasets = {
        "strait": S3MapDataset.from_prefix(f"s3://{BUCKET}/{name}/", region=REGION, endpoint=strait.url,
                                           transform=reader_to_tensor,
                                           s3client_config=S3ClientConfig(force_path_style=True)),
        "disk": FileDataset(paths),
        "nginx": HTTPDataset("127.0.0.1", nginx.port, [f"/{BUCKET}/{k}" for k in keys]),
        "strait-http": HTTPDataset(strait.host, strait.port, [strait.presign(k) for k in keys]),
        "nginx-s3tc": S3MapDataset.from_objects([f"s3://{BUCKET}/{k}" for k in keys], region=REGION,
                                                endpoint=f"http://127.0.0.1:{nginx.port}",
                                                transform=reader_to_tensor,
                                                s3client_config=S3ClientConfig(force_path_style=True)),
    }
    # persistent_workers: the workers (and their connections) outlive an epoch, so the measured
    # epochs are steady state; shuffle=True as in training (a fixed seed for each system).
    return {s: DataLoader(ds, batch_size=batch, shuffle=True, num_workers=WORKERS, persistent_workers=True,
                          generator=torch.Generator().manual_seed(1))
            for s, ds in datasets.items()}


def main() -> int:
    target = os.environ.get("CARGO_TARGET_DIR", os.path.expanduser("~/.cache/strait/target"))
    release = os.path.join(target, "release", "strait")
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--binary", default=os.environ.get("STRAIT_BIN") or (
        release if os.path.exists(release) else os.path.join(target, "debug", "strait")))
    ap.add_argument("--work", default=os.path.expanduser("~/.cache/strait/bench-dataloader"))
    ap.add_argument("--small", type=int, default=4000, help="number of 64 KiB samples")
    ap.add_argument("--large", type=int, default=48, help="number of 8 MiB samples")
    ap.add_argument("--rounds", type=int, default=5, help="measured epochs per system and workload")
    ap.add_argument("--out", default=str(REPO / "bench" / "RESULTS.md"), help="'-': print only")
    a = ap.parse_args()
    # s3torchconnector's CRT client takes its credentials from the environment.
    os.environ.update(AWS_ACCESS_KEY_ID=AK, AWS_SECRET_ACCESS_KEY=SK, AWS_EC2_METADATA_DISABLED="true")
    work = Path(a.work)
    root, state = work / "root", work / "state"
    state.mkdir(parents=True, exist_ok=True)
    workloads = [("small", a.small, 64 * KIB, 32), ("large", a.large, 8 * MIB, 4)]
    files = {name: make_files(root / BUCKET, name, n, size) for name, n, size, _ in workloads}

    strait = Strait(a.binary, root, state, work / "strait.log")
    nginx = Nginx(root, work)
    results: dict = {}
    try:
        for name, n, size, batch in workloads:
            loaders = make_loaders(name, files[name], strait, nginx, batch)
            for s, loader in loaders.items():  # warm-up: workers, connections, page cache
                epoch(loader, n * size)
            times: dict = {s: [] for s in loaders}
            for r in range(a.rounds):
                for s, loader in loaders.items():
                    times[s].append(epoch(loader, n * size))
                print(f"{name} round {r + 1}: " + ", ".join(f"{s} {n / times[s][-1]:.0f}/s" for s in loaders),
                      flush=True)
            results[name] = (n, size, batch, {s: n / statistics.median(t) for s, t in times.items()})
            del loaders  # ends their workers
    finally:
        strait.stop()
        nginx.stop()

    lines = render(a, results, nginx.version)
    print("\n".join(lines))
    if a.out != "-":
        with open(a.out, "a") as f:
            f.write("\n".join(lines) + "\n")
        print(f"appended to {a.out}")
    return 0


def render(a, results: dict, nginx_version: str) -> list[str]:
    import s3torchconnector

    cpu = "unknown"
    try:
        cpu = next(ln.split(":", 1)[1].strip() for ln in open("/proc/cpuinfo") if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    fs = subprocess.run(["df", "-T", a.work], capture_output=True, text=True).stdout.splitlines()[-1].split()[1]
    lines = [
        "",
        f"## DataLoader: samples/s, 2 workers, Strait vs local disk vs nginx ({dt.date.today().isoformat()})",
        "",
        f"Machine: {os.cpu_count()} cores ({cpu}), {platform.system()} {platform.release()}, file system of the "
        f"files: {fs} (in the page cache). Binary: `{Path(a.binary).parent.name}` build. Command: "
        f"`torch-venv/bin/python bench/dataloader.py` (small={a.small}, large={a.large}, rounds={a.rounds}). "
        f"torch {torch.__version__} (Debian, CPU), s3torchconnector {s3torchconnector.__version__}, "
        f"{nginx_version.replace('nginx version: ', '')} (sendfile on).",
        "",
        "Medians of the measured epochs, the systems interleaved, after a warm-up epoch each; client, "
        "servers and the DataLoader's 2 worker processes share the cores.",
        "",
        "| samples | " + " | ".join(f"{label} (samples/s)" for label in SYSTEMS.values())
        + " | Strait / nginx: s3torchconnector to both, http.client to both, s3torchconnector to Strait vs http.client to nginx |",
        "|---|" + "---|" * len(SYSTEMS) + "---|",
    ]
    for name, (n, size, batch, sps) in results.items():
        label = f"{size // KIB} KiB" if size < MIB else f"{size // MIB} MiB"
        cells = [f"{sps[s]:.0f} ({sps[s] * size / MIB:.0f} MiB/s)" for s in SYSTEMS]
        lines.append(f"| {label} × {n}, batches of {batch} | " + " | ".join(cells)
                     + f" | {sps['strait'] / sps['nginx-s3tc']:.2f}×, {sps['strait-http'] / sps['nginx']:.2f}×, "
                     f"{sps['strait'] / sps['nginx']:.2f}× |")
    lines.append("")
    return lines


if __name__ == "__main__":
    sys.exit(main())
