"""PyTorch data loaders against Strait (issue 8): s3torchconnector and fsspec/s3fs.

The loading itself runs in tests/e2e/torch_loader.py under the torch venv (Debian's torch,
s3torchconnector, s3fs; made by scripts/install-torch-env.sh), as a subprocess with its own
DataLoader workers; this file uploads the data, runs the worker and checks its report against
the manifest of md5s computed here. A missing torch venv fails the tests (it is not skipped).

Covered, over HTTP and over TLS (the session servers):
- S3MapDataset (shuffle) and S3IterableDataset (sharded) from a prefix, 2 workers, 2 epochs;
- a map-style Dataset over s3fs, 2 workers, 2 epochs;
- S3Checkpoint: torch.save to an S3Writer and torch.load from an S3Reader;
and, on a dedicated server with an access log behind a header-recording relay, the requests the
clients really make: ListObjectsV2 with an empty `delimiter=`, 8 MiB ranged GETs with If-Match
for an object over 16 MiB, range-based reads, and s3fs's HEAD then GETs with x-amz-checksum-mode.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import functools
import hashlib
import json
import math
import os
import random
import re
import signal
import socket
import subprocess
import threading
from pathlib import Path

import pytest

from helpers import MIB, Server, boto_client

HERE = Path(__file__).resolve().parent
WORKER = HERE / "torch_loader.py"
INSTALL = "bash scripts/install-torch-env.sh"
KIB = 1024

N_SAMPLES = 200
PREFIX = "train/"
EPOCHS = 2
WORKERS = 2
WORKER_TIMEOUT = 240  # seconds for one worker run (the whole dataset, both epochs, is ~80 MB)


# ---------------------------------------------------------------------------------------------
# The torch venv and its worker
# ---------------------------------------------------------------------------------------------


@functools.cache
def _probe_torch_venv() -> tuple[str, str | None]:
    """(the torch venv's python, why it is unusable or None), checked once per session."""
    venv = Path(os.environ.get("STRAIT_TORCH_VENV", Path.home() / ".cache/strait/torch-venv"))
    python = venv / "bin" / "python"
    if not os.access(python, os.X_OK):
        return str(python), f"no torch venv at {venv} (set STRAIT_TORCH_VENV, or run `{INSTALL}`)"
    probe = subprocess.run([str(python), "-c", "import torch, s3torchconnector, s3fs"],
                           capture_output=True, text=True, timeout=120)
    if probe.returncode != 0:
        return str(python), f"torch venv {venv} is broken (re-run `{INSTALL}`):\n{probe.stderr[-3000:]}"
    return str(python), None


def torch_python() -> str:
    """The torch venv's interpreter; without a working one the calling test fails (no skip)."""
    python, problem = _probe_torch_venv()
    if problem:
        pytest.fail(problem, pytrace=False)
    return python


def worker_env(server: Server) -> dict:
    """The worker's environment: the server's credentials and nothing else of AWS's."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_") and k != "SSL_CERT_FILE"}
    env.update({
        "AWS_ACCESS_KEY_ID": server.access_key,
        "AWS_SECRET_ACCESS_KEY": server.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": os.devnull,
        "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        "AWS_EC2_METADATA_DISABLED": "true",
    })
    return env


def run_worker(tmp_path: Path, server: Server, mode: str, bucket: str,
               *args: str, endpoint: str | None = None) -> dict:
    """Run torch_loader.py MODE in the torch venv and return its JSON report.

    The worker runs in its own process group, so a hang kills its DataLoader workers too. (A
    hang is what an https endpoint the CRT does not trust looks like: it retries in silence.)"""
    out = tmp_path / f"{mode}-report.json"
    cmd = [torch_python(), str(WORKER), mode, "--endpoint", endpoint or server.url,
           "--bucket", bucket, "--out", str(out), *args]
    if server.ca:
        cmd += ["--ca", str(server.ca)]
    proc = subprocess.Popen(cmd, env=worker_env(server), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        stdout, stderr = proc.communicate(timeout=WORKER_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        stdout, stderr = proc.communicate()
        pytest.fail(f"torch_loader {mode} against {server.url} hung for {WORKER_TIMEOUT}s\n"
                    f"--- stderr ---\n{stderr[-4000:]}", pytrace=False)
    if proc.returncode != 0:
        pytest.fail(f"torch_loader {mode} against {server.url} exited {proc.returncode}\n"
                    f"--- stdout ---\n{stdout[-2000:]}\n--- stderr ---\n{stderr[-6000:]}", pytrace=False)
    return json.loads(out.read_text())


# ---------------------------------------------------------------------------------------------
# The dataset: 200 samples of random bytes under train/, uploaded once per transport
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Uploaded:
    server: Server
    bucket: str
    manifest: dict  # key -> (md5 hex, size), computed here from the bytes sent


def sample_sizes(n: int, rng: random.Random) -> list[int]:
    """n sizes spread log-uniformly over 1 KiB .. 3 MiB, both ends included (mean ~0.4 MiB)."""
    lo, hi = math.log(KIB), math.log(3 * MIB)
    sizes = [int(math.exp(rng.uniform(lo, hi))) for _ in range(n - 2)] + [KIB, 3 * MIB]
    rng.shuffle(sizes)
    return sizes


def upload_dataset(server: Server, bucket: str) -> dict:
    s3 = boto_client(server)
    s3.create_bucket(Bucket=bucket)
    rng = random.Random(8)
    objects = {f"{PREFIX}sample-{i:05d}.bin": rng.randbytes(size)
               for i, size in enumerate(sample_sizes(N_SAMPLES, rng))}
    # Neighbours that a listing of "train/" must leave out.
    decoys = {"val/sample-00000.bin": b"validation", "train-extra.bin": b"not under train/"}
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda kv: s3.put_object(Bucket=bucket, Key=kv[0], Body=kv[1]),
                      {**objects, **decoys}.items()))
    return {k: (hashlib.md5(v).hexdigest(), len(v)) for k, v in objects.items()}


@pytest.fixture(scope="module", params=["http", "tls"])
def uploaded(request) -> Uploaded:
    server = request.getfixturevalue("server" if request.param == "http" else "tls_server")
    bucket = f"torch-{request.param}-{os.urandom(4).hex()}"
    return Uploaded(server, bucket, upload_dataset(server, bucket))


def check_epochs(report: dict, manifest: dict, shuffled: bool) -> None:
    """Each epoch: every manifest key exactly once, with the source's md5 and size, read by all
    workers; shuffled epochs come in different orders."""
    epochs = report["epochs"]
    assert len(epochs) == EPOCHS
    orders = []
    for n, epoch in enumerate(epochs):
        keys = [k for k, _, _, _ in epoch]
        dupes = sorted(k for k, c in collections.Counter(keys).items() if c > 1)
        assert not dupes, f"epoch {n}: keys read more than once: {dupes[:10]}"
        missing, extra = sorted(set(manifest) - set(keys)), sorted(set(keys) - set(manifest))
        assert not missing and not extra, f"epoch {n}: missing {missing[:10]}, unexpected {extra[:10]}"
        wrong = [(k, size, manifest[k][1]) for k, digest, size, _ in epoch if manifest[k][0] != digest]
        assert not wrong, f"epoch {n}: {len(wrong)} samples differ from the source (key, got, want size): {wrong[:5]}"
        workers = {w for _, _, _, w in epoch}
        assert workers == set(range(WORKERS)), f"epoch {n}: samples came from workers {workers}"
        orders.append(keys)
    if shuffled:
        assert orders[0] != sorted(orders[0]) and orders[0] != orders[1], "shuffle=True did not shuffle"


# ---------------------------------------------------------------------------------------------
# Data loaders, over HTTP and TLS
# ---------------------------------------------------------------------------------------------


def test_s3torchconnector_map_dataset(uploaded, tmp_path):
    u = uploaded
    report = run_worker(tmp_path, u.server, "map", u.bucket, "--prefix", PREFIX,
                        "--epochs", str(EPOCHS), "--workers", str(WORKERS))
    assert report["len"] == N_SAMPLES
    check_epochs(report, u.manifest, shuffled=True)


def test_s3torchconnector_iterable_dataset(uploaded, tmp_path):
    u = uploaded
    report = run_worker(tmp_path, u.server, "iterable", u.bucket, "--prefix", PREFIX,
                        "--epochs", str(EPOCHS), "--workers", str(WORKERS))
    check_epochs(report, u.manifest, shuffled=False)


def test_s3fs_map_dataset(uploaded, tmp_path):
    u = uploaded
    report = run_worker(tmp_path, u.server, "s3fs", u.bucket, "--prefix", PREFIX,
                        "--epochs", str(EPOCHS), "--workers", str(WORKERS))
    assert report["len"] == N_SAMPLES
    check_epochs(report, u.manifest, shuffled=True)


def test_s3checkpoint_round_trip(uploaded, tmp_path):
    """torch.save into S3Checkpoint.writer, torch.load from .reader: the same tensors back. The
    CRT writer always uploads in parts: one part for the small state, two for the ~12 MiB one."""
    u = uploaded
    report = run_worker(tmp_path, u.server, "checkpoint", u.bucket, "--prefix", "ckpt/")
    s3 = boto_client(u.server)
    for name in ("small", "large"):
        r = report[name]
        assert r["keys_equal"] and r["tensors_equal"] and r["others_equal"], f"{name}: {r}"
        head = s3.head_object(Bucket=u.bucket, Key=r["key"])
        assert head["ContentLength"] == r["local_size"], f"{name}: stored size differs from torch.save's"
    parts = {"small": 1, "large": 2}
    for name, n in parts.items():
        etag = s3.head_object(Bucket=u.bucket, Key=report[name]["key"])["ETag"]
        assert etag.endswith(f'-{n}"'), f"{name}: ETag {etag}, expected a {n}-part multipart upload"


# ---------------------------------------------------------------------------------------------
# Request patterns: a dedicated server with an access log, behind a recording relay
# ---------------------------------------------------------------------------------------------


class RecordingRelay:
    """A TCP relay in front of a plain-HTTP server that records every request's method, target
    and headers (the access log has no headers), forwarding all bytes unchanged both ways.

    Request bodies are skipped by Content-Length; a chunked request body is recorded as such and
    the rest of that connection relayed unparsed."""

    def __init__(self, host: str, port: int):
        self.upstream = (host, port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def close(self) -> None:
        self.listener.close()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(self.upstream)
            threading.Thread(target=self._pipe, args=(upstream, client), daemon=True).start()
            threading.Thread(target=self._requests, args=(client, upstream), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket, pending: bytes = b"") -> None:
        try:
            if pending:
                dst.sendall(pending)
            while data := src.recv(1 << 16):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s, how in ((dst, socket.SHUT_WR), (src, socket.SHUT_RD)):
                try:
                    s.shutdown(how)
                except OSError:
                    pass

    def _requests(self, client: socket.socket, upstream: socket.socket) -> None:
        buf = b""
        try:
            while True:
                while b"\r\n\r\n" not in buf:
                    data = client.recv(1 << 16)
                    if not data:
                        upstream.shutdown(socket.SHUT_WR)
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                lines = head.decode("latin-1").split("\r\n")
                method, target, _ = lines[0].split(" ", 2)
                headers = {}
                for ln in lines[1:]:
                    name, _, value = ln.partition(":")
                    headers[name.strip().lower()] = value.strip()
                with self._lock:
                    self.requests.append({"method": method, "target": target, "headers": headers})
                upstream.sendall(head + b"\r\n\r\n")
                if "chunked" in headers.get("transfer-encoding", "").lower():
                    return self._pipe(client, upstream, buf)
                remaining = int(headers.get("content-length", "0"))
                while remaining:
                    if not buf:
                        buf = client.recv(min(remaining, 1 << 16))
                        if not buf:
                            return
                    piece, buf = buf[:remaining], buf[remaining:]
                    upstream.sendall(piece)
                    remaining -= len(piece)
        except OSError:
            pass


def parse_range(value: str) -> tuple[int, int]:
    m = re.fullmatch(r"bytes=(\d+)-(\d+)", value)
    assert m, f"Range {value!r} is not bytes=FIRST-LAST"
    return int(m.group(1)), int(m.group(2))


def test_request_patterns(spawn_server, tmp_path):
    access_log = tmp_path / "access.log"
    server = spawn_server(extra_args=("--access-log", str(access_log)))
    bucket = "patterns"
    s3 = boto_client(server)
    s3.create_bucket(Bucket=bucket)
    rng = random.Random(16)
    big_key, big = "big/blob.bin", rng.randbytes(25 * MIB + 12345)  # > 16 MiB: four 8 MiB parts
    small = {f"{PREFIX}s-{i:02d}.bin": rng.randbytes(100 + i) for i in range(20)}
    for key, body in {big_key: big, **small, "top.bin": b"top"}.items():
        s3.put_object(Bucket=bucket, Key=key, Body=body)
    etag = s3.head_object(Bucket=bucket, Key=big_key)["ETag"]
    windows = [[0, 100], [8 * MIB - 10, 20], [3 * MIB, 10 * MIB], [len(big) - 5, 5], [len(big) - 3, 100]]

    relay = RecordingRelay(server.host, server.port)
    try:
        report = run_worker(tmp_path, server, "patterns", bucket, "--prefix", PREFIX,
                            "--key", big_key, "--windows", json.dumps(windows), endpoint=relay.url)
    finally:
        relay.close()
    # For a failure's post-mortem: what the clients sent, next to the server's access log.
    (tmp_path / "requests.json").write_text(json.dumps(relay.requests, indent=1))
    log = [json.loads(ln) for ln in access_log.read_text().splitlines()]
    big_path = f"/{bucket}/{big_key}"
    crt = [r for r in relay.requests if "s3torchconnector" in r["headers"].get("user-agent", "")]
    botocore = [r for r in relay.requests if "botocore" in r["headers"].get("user-agent", "").lower()]
    assert crt and botocore, f"user agents seen: {sorted({r['headers'].get('user-agent') for r in relay.requests})}"

    # The data itself.
    assert report["sequential"] == {"size": len(big), "md5": hashlib.md5(big).hexdigest()}
    for (off, n, got_len, digest) in report["ranged"]:
        want = big[off:off + n]
        assert (got_len, digest) == (len(want), hashlib.md5(want).hexdigest()), f"range read at {off}+{n}"
    want_s3fs = {"info_size": len(big), "info_etag": etag, "whole": hashlib.md5(big).hexdigest(),
                 "part": hashlib.md5(big[5_000_000:5_000_100]).hexdigest(),
                 "streamed": hashlib.md5(big).hexdigest()}
    assert report["s3fs"] == want_s3fs

    # Listings: the CRT always sends `delimiter=` (empty) and, for max-keys 7, pages of 7 with
    # continuation tokens; the delimited listing of the top level has the prefixes and top.bin.
    lst = report["listings"]
    assert lst["keys"] == sorted(small) and lst["page_sizes"] == [7, 7, 6]
    assert lst["top_prefixes"] == ["big/", "train/"] and lst["top_keys"] == ["top.bin"]
    lists = [e for e in log if e["operation"] == "ListObjectsV2"]
    assert all(e["status"] == 200 for e in lists), [e for e in lists if e["status"] != 200]
    empty_delim = [e for e in lists if re.search(r"(^|&)delimiter=(&|$)", e["query"] or "")]
    assert len(empty_delim) >= 3, f"no ListObjectsV2 with an empty delimiter= in {[e['query'] for e in lists]}"
    assert sum("continuation-token=" in (e["query"] or "") for e in empty_delim) >= 2

    # Sequential read: the CRT splits it into 8 MiB ranged GETs (the last one shorter); the parts
    # after the first are conditional on the ETag the first part returned (If-Match).
    crt_gets = [r for r in crt if r["method"] == "GET" and r["target"] == big_path]
    assert all("range" in r["headers"] for r in crt_gets), "a CRT GET of the big object without Range"
    by_range = {parse_range(r["headers"]["range"]): r for r in crt_gets}
    seq_parts = [(0, 8 * MIB - 1), (8 * MIB, 16 * MIB - 1), (16 * MIB, 24 * MIB - 1), (24 * MIB, len(big) - 1)]
    assert all(p in by_range for p in seq_parts), f"part ranges {seq_parts}, got {sorted(by_range)}"
    if_match = [by_range[p]["headers"].get("if-match") for p in seq_parts[1:]]
    assert if_match == [etag] * 3, f"If-Match on parts 2-4: {if_match}, ETag {etag}"
    # Range-based reader: one ranged GET per window, clipped at the end of the object; the
    # 10 MiB window is itself split into an 8 MiB and a conditional 2 MiB part.
    for off, n in windows:
        first = (off, min(off + n, len(big)) - 1) if n <= 8 * MIB else (off, off + 8 * MIB - 1)
        assert first in by_range, f"window {off}+{n}: no GET of {first}; got {sorted(by_range)}"
    # In the access log: every GET of the object answered 206, or 200 for s3fs's whole one.
    gets = [e for e in log if e["operation"] == "GetObject" and e["path"] == big_path]
    assert sum(e["status"] == 206 for e in gets) >= 4 + len(windows), [(e["status"], e["bytes_out"]) for e in gets]
    assert all(e["status"] in (200, 206) for e in gets), [e for e in gets if e["status"] not in (200, 206)]

    # s3fs: HEAD (info) before its GETs, each GET in checksum mode: the whole-object one from
    # cat_file (botocore validated the CRC32 Strait returns for it, checked below), a ranged
    # one, and the buffered read's (conditional on the ETag the HEAD returned).
    s3fs_big = [r for r in botocore if r["target"] == big_path]
    assert s3fs_big and s3fs_big[0]["method"] == "HEAD", [r["method"] for r in s3fs_big]
    s3fs_gets = [r for r in s3fs_big if r["method"] == "GET"]
    modes = [r["headers"].get("x-amz-checksum-mode") for r in s3fs_gets]
    assert len(s3fs_gets) >= 3 and all(m and m.upper() == "ENABLED" for m in modes), \
        f"x-amz-checksum-mode on s3fs GETs: {modes}"
    s3fs_ranges = [r["headers"].get("range") for r in s3fs_gets]
    assert None in s3fs_ranges and "bytes=5000000-5000099" in s3fs_ranges, s3fs_ranges
    assert all(r["headers"].get("if-match") in (None, etag) for r in s3fs_gets)
    heads = [e for e in log if e["method"] == "HEAD" and e["path"] == big_path]
    assert heads and all(e["status"] == 200 for e in heads), [e["status"] for e in heads]
    whole = s3.get_object(Bucket=bucket, Key=big_key, ChecksumMode="ENABLED")
    whole["Body"].close()
    assert any(k.startswith("Checksum") and k != "ChecksumType" for k in whole), \
        f"no checksum on a checksum-mode GET: {sorted(whole)}"
