"""The data path: the file I/O engine (io_uring or threads, chosen at start and logged) and
zero-copy GET bodies (sendfile) on plaintext HTTP/1.x, with the copying paths (TLS, HTTP/2,
zero_copy = false) serving the same bytes.

The whole suite runs under both engines (scripts/test.sh sets STRAIT_IO_ENGINE for a second
pass); these tests pin what each engine and each body path must do.
"""

from __future__ import annotations

import base64
import concurrent.futures as cf
import hashlib
import os
import re
import subprocess
import threading
import time
import urllib.request

import pytest

from helpers import MIB, Raw, boto_client, key_path, require_tool
from test_operations import admin_url

ENGINE_RE = re.compile(r"strait: I/O engine: (\S+)")


def metrics(server) -> str:
    with urllib.request.urlopen(admin_url(server) + "/metrics", timeout=10) as r:
        return r.read().decode()


def metric(server, name: str) -> float:
    m = re.search(rf"^{re.escape(name)}(?:{{[^}}]*}})? (\S+)$", metrics(server), re.M)
    assert m, f"{name} not in /metrics"
    return float(m.group(1))


def engine_of(server) -> str:
    m = ENGINE_RE.search(server.log_text())
    assert m, "no I/O engine line in the log:\n" + server.log_text()[-2000:]
    return m.group(1)


def admin(spawn_server, **kw):
    args = list(kw.pop("extra_args", ())) + ["--admin-listen", "127.0.0.1:0"]
    return spawn_server(extra_args=args, **kw)


def sha(b: bytes) -> str:
    return hashlib.sha256(b).hexdigest()


def test_the_engine_is_chosen_at_start_logged_and_exported(spawn_server):
    s = admin(spawn_server)
    name = engine_of(s)
    forced = os.environ.get("STRAIT_IO_ENGINE")
    if forced in ("io_uring", "threads"):
        assert name == forced
    else:
        assert name in ("io_uring", "threads")
        if name == "threads":
            assert "io_uring unavailable" in s.log_text(), "auto fell back without saying why"
    assert metric(s, "strait_io_engine") == 1
    assert f'strait_io_engine{{engine="{name}"}} 1' in metrics(s)


@pytest.mark.parametrize("engine", ["io_uring", "threads"])
def test_each_engine_moves_the_same_bytes(spawn_server, tmp_path, engine):
    try:
        s = spawn_server(extra_args=["--io-engine", engine], root=tmp_path / engine, state_dir=tmp_path / f"{engine}-state")
    except RuntimeError as e:
        # Forced io_uring on a kernel without it must refuse to start, and say why.
        assert engine == "io_uring" and "io_uring:" in str(e), e
        pytest.skip(f"io_uring unavailable here: {e}")
    assert engine_of(s) == engine
    c = boto_client(s, max_pool_connections=8)
    c.create_bucket(Bucket="eng")
    blobs = {f"k{i}": os.urandom(n) for i, n in enumerate([0, 1, 4095, 1 * MIB, 3 * MIB + 7, 9 * MIB + 1])}
    with cf.ThreadPoolExecutor(6) as ex:
        list(ex.map(lambda k: c.put_object(Bucket="eng", Key=k, Body=blobs[k]), blobs))
        got = dict(ex.map(lambda k: (k, c.get_object(Bucket="eng", Key=k)["Body"].read()), blobs))
    for k, b in blobs.items():
        assert sha(got[k]) == sha(b), k
        # The staged file on disk is exactly the body (positional writes left no hole or tail).
        assert (tmp_path / engine / "eng" / k).read_bytes() == b
    big = blobs["k5"]
    r = c.get_object(Bucket="eng", Key="k5", Range=f"bytes={5 * MIB - 3}-{8 * MIB}")
    assert r["Body"].read() == big[5 * MIB - 3:8 * MIB + 1]


def test_plain_http_get_bodies_go_by_sendfile(spawn_server):
    s = admin(spawn_server)
    c = boto_client(s)
    c.create_bucket(Bucket="zcopy")
    sizes = [1, 4096, 300_000, 8 * MIB, 8 * MIB + 5, 20 * MIB + 3]
    blobs = {f"o{n}": os.urandom(n) for n in sizes}
    for k, b in blobs.items():
        c.put_object(Bucket="zcopy", Key=k, Body=b)
    before = metric(s, "strait_sendfile_bytes_total")
    served = 0
    # One pooled keep-alive connection: bodies, heads and listings interleave on it.
    for k, b in blobs.items():
        assert c.get_object(Bucket="zcopy", Key=k)["Body"].read() == b, k
        assert c.head_object(Bucket="zcopy", Key=k)["ContentLength"] == len(b)
        served += len(b)
        c.list_objects_v2(Bucket="zcopy", MaxKeys=2)
    big = blobs[f"o{20 * MIB + 3}"]
    for lo, hi in [(0, 0), (MIB - 1, 9 * MIB + 2), (20 * MIB, 20 * MIB + 2)]:
        assert c.get_object(Bucket="zcopy", Key=f"o{20 * MIB + 3}", Range=f"bytes={lo}-{hi}")["Body"].read() == big[lo:hi + 1]
        served += hi + 1 - lo
    assert metric(s, "strait_sendfile_bytes_total") - before == served
    # Pipelined requests on one connection: the answers come back in order, each whole.
    raw = Raw(s)
    reqs = []
    for k in ["o4096", f"o{8 * MIB + 5}", "o1"]:
        target, headers, _ = raw.sign("GET", key_path("zcopy", k))
        lines = [f"GET {target} HTTP/1.1"] + [f"{h}: {v}" for h, v in headers.items()]
        reqs.append(("\r\n".join(lines) + "\r\n\r\n").encode())
    import socket

    sock = socket.create_connection((s.host, s.port))
    sock.sendall(b"".join(reqs))
    f = sock.makefile("rb")
    for k in ["o4096", f"o{8 * MIB + 5}", "o1"]:
        status = f.readline()
        assert b" 200 " in status, status
        length = None
        while (line := f.readline()) not in (b"\r\n", b""):
            name, _, value = line.decode().partition(":")
            if name.lower() == "content-length":
                length = int(value)
        assert length == len(blobs[k])
        assert f.read(length) == blobs[k], k
    sock.close()


def test_copying_paths_serve_the_same_bytes(spawn_server, tmp_path, tls_material):
    """zero_copy = false, HTTP/2 (h2c prior knowledge) and TLS copy through memory."""
    blob = os.urandom(9 * MIB + 11)
    cfg = tmp_path / "nozc.toml"
    cfg.write_text("[io]\nzero_copy = false\n")
    off = admin(spawn_server, extra_args=["--config", str(cfg)], root=tmp_path / "off", state_dir=tmp_path / "off-state")
    chain, key, ca = tls_material
    tls = admin(spawn_server, tls_cert=chain, tls_key=key, ca=ca, root=tmp_path / "tls", state_dir=tmp_path / "tls-state")
    for s in (off, tls):
        c = boto_client(s)
        c.create_bucket(Bucket="copying")
        c.put_object(Bucket="copying", Key="b", Body=blob)
        assert c.get_object(Bucket="copying", Key="b")["Body"].read() == blob
        assert c.get_object(Bucket="copying", Key="b", Range="bytes=100-")["Body"].read() == blob[100:]
        assert metric(s, "strait_sendfile_bytes_total") == 0
    on = admin(spawn_server, root=tmp_path / "on", state_dir=tmp_path / "on-state")
    c = boto_client(on)
    c.create_bucket(Bucket="copying")
    c.put_object(Bucket="copying", Key="b", Body=blob)
    curl = require_tool("curl")
    before = metric(on, "strait_sendfile_bytes_total")
    out = subprocess.run(
        [curl, "-sS", "--fail", "--http2-prior-knowledge", "--aws-sigv4", "aws:amz:us-east-1:s3",
         "-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD",
         "--user", f"{on.access_key}:{on.secret_key}", "-w", "%{http_version}", "-o", str(tmp_path / "h2.out"),
         f"{on.url}/copying/b"],
        capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout == "2"
    assert sha((tmp_path / "h2.out").read_bytes()) == sha(blob)
    assert metric(on, "strait_sendfile_bytes_total") == before


def test_a_client_leaving_mid_body_harms_nothing(spawn_server):
    s = admin(spawn_server)
    c = boto_client(s)
    c.create_bucket(Bucket="gone")
    blob = os.urandom(48 * MIB)
    c.put_object(Bucket="gone", Key="big", Body=blob)
    raw = Raw(s)
    for _ in range(5):
        conn = raw.connection()
        target, headers, _ = raw.sign("GET", key_path("gone", "big"))
        conn.putrequest("GET", target, skip_host=True, skip_accept_encoding=True)
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.endheaders()
        resp = conn.getresponse()
        assert resp.status == 200
        resp.read(MIB)
        conn.close()
    assert c.get_object(Bucket="gone", Key="big")["Body"].read() == blob
    time.sleep(0.2)
    assert s.alive()


def test_an_object_replaced_during_a_zero_copy_get_is_served_whole_old(spawn_server):
    """The open descriptor pins the version: a reader sees the old object or the new one."""
    s = spawn_server()
    c = boto_client(s)
    c.create_bucket(Bucket="pin")
    old, new = os.urandom(40 * MIB), os.urandom(40 * MIB)
    c.put_object(Bucket="pin", Key="k", Body=old)
    raw = Raw(s)
    conn = raw.connection()
    target, headers, _ = raw.sign("GET", key_path("pin", "k"))
    conn.putrequest("GET", target, skip_host=True, skip_accept_encoding=True)
    for k, v in headers.items():
        conn.putheader(k, v)
    conn.endheaders()
    resp = conn.getresponse()
    first = resp.read(2 * MIB)
    done = threading.Event()
    threading.Thread(target=lambda: (c.put_object(Bucket="pin", Key="k", Body=new), done.set())).start()
    assert done.wait(60)
    rest = resp.read()
    assert sha(first + rest) == sha(old)
    assert c.get_object(Bucket="pin", Key="k")["Body"].read() == new


@pytest.mark.parametrize("alg", ["SHA256", "CRC32", "SHA1"])
def test_pipelined_put_digests_cover_every_byte_in_order(spawn_server, tmp_path, alg):
    """Bodies of several 1 MiB buffers are hashed by a chain of tasks (the hasher travels with
    each buffer): the ETag and the checksum must be those of the whole body, in order."""
    from helpers import checksum_b64

    s = spawn_server(root=tmp_path / alg, state_dir=tmp_path / f"{alg}-state")
    c = boto_client(s)
    c.create_bucket(Bucket="digests")
    for n in [2 * MIB, 2 * MIB + 1, 5 * MIB + 3, 17 * MIB]:
        body = os.urandom(n)
        r = c.put_object(Bucket="digests", Key=f"k{n}", Body=body, ChecksumAlgorithm=alg)
        assert r["ETag"] == f'"{hashlib.md5(body).hexdigest()}"', n
        assert r[f"Checksum{alg}"] == checksum_b64(alg, body), n
        # A wrong declared digest is still refused and leaves nothing behind.
        bad = body[:-1] + bytes([body[-1] ^ 1])
        with pytest.raises(Exception) as e:
            md5 = base64.b64encode(hashlib.md5(body).digest()).decode()
            c.put_object(Bucket="digests", Key=f"bad{n}", Body=bad, ContentMD5=md5)
        assert "BadDigest" in str(e.value)
        assert not (tmp_path / alg / "digests" / f"bad{n}").exists()
        assert (tmp_path / alg / "digests" / f"k{n}").read_bytes() == body


def opens(server) -> dict[str, float]:
    """strait_object_opens_total by path: inline (served from the kernel's caches on the async
    thread) or pool (some step would have blocked, so the open ran on the I/O pool)."""
    found = re.findall(r'^strait_object_opens_total\{path="(\w+)"\} (\S+)$', metrics(server), re.M)
    return {"inline": 0.0, "pool": 0.0} | {p: float(n) for p, n in found}


def evict(path) -> None:
    """Write back a file and drop its pages from the page cache."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def fs_type(path) -> str:
    return subprocess.run(["stat", "-f", "-c", "%T", str(path)], capture_output=True, text=True, check=True).stdout.strip()


@pytest.mark.parametrize("zero_copy", [True, False])
def test_hot_opens_run_inline_and_cold_pages_go_to_the_pool(spawn_server, tmp_path, zero_copy):
    """A GET or HEAD of a file whose lookups and pages are cached is served on the async thread;
    one whose body is not in the page cache (zero_copy = false reads small bodies during the
    open) gives way to the I/O pool, and both serve the same bytes."""
    cfg = tmp_path / "io.toml"
    cfg.write_text(f"[io]\nzero_copy = {'true' if zero_copy else 'false'}\n")
    root = tmp_path / "root"
    s = admin(spawn_server, extra_args=["--config", str(cfg)], root=root, state_dir=tmp_path / "state")
    if fs_type(root) in ("tmpfs", "nfs", "fuseblk", "fuse"):
        pytest.skip(f"the test root is on {fs_type(root)}: pages cannot be evicted, or it is not local")
    c = boto_client(s)
    c.create_bucket(Bucket="inl")
    small = os.urandom(4096)
    c.put_object(Bucket="inl", Key="d/small", Body=small)
    t0 = opens(s)
    for _ in range(3):
        assert c.get_object(Bucket="inl", Key="d/small")["Body"].read() == small
    assert c.head_object(Bucket="inl", Key="d/small")["ContentLength"] == 4096
    with pytest.raises(c.exceptions.NoSuchKey):
        c.get_object(Bucket="inl", Key="d/absent")
    t1 = opens(s)
    # Hot: all five opens inline (the absent key answers from the negative dentry cache, or
    # gives way; either way a 404).
    assert t1["inline"] - t0["inline"] >= 4, (t0, t1)
    assert t1["pool"] - t0["pool"] <= 1, (t0, t1)
    path = root / "inl" / "d" / "small"
    if zero_copy:
        evict(path)
        assert c.get_object(Bucket="inl", Key="d/small")["Body"].read() == small
        t2 = opens(s)
        # The open needs no body page (sendfile sends it later): still inline.
        assert t2["inline"] - t1["inline"] == 1 and t2["pool"] == t1["pool"], (t1, t2)
    else:
        # The small body is read during the open: with its pages evicted, the pool reads it.
        # (fadvise cannot drop pages still in another CPU's LRU batch: evict until it did.)
        for _ in range(50):
            evict(path)
            time.sleep(0.02)
            assert c.get_object(Bucket="inl", Key="d/small")["Body"].read() == small
            t2 = opens(s)
            if t2["pool"] > t1["pool"]:
                break
            t1 = t2
        assert t2["pool"] - t1["pool"] == 1 and t2["inline"] == t1["inline"], (t1, t2)
    # The pool's read brought the pages back: inline again.
    assert c.get_object(Bucket="inl", Key="d/small")["Body"].read() == small
    t3 = opens(s)
    assert t3["inline"] - t2["inline"] == 1, (t2, t3)


def test_inline_opens_can_be_switched_off(spawn_server, tmp_path):
    cfg = tmp_path / "io.toml"
    cfg.write_text("[io]\ninline_cached = false\n")
    s = admin(spawn_server, extra_args=["--config", str(cfg)])
    assert "cached opens inline: off" in s.log_text()
    c = boto_client(s)
    c.create_bucket(Bucket="off")
    c.put_object(Bucket="off", Key="k", Body=b"x" * 100)
    for _ in range(3):
        assert c.get_object(Bucket="off", Key="k")["Body"].read() == b"x" * 100
    assert opens(s) == {"inline": 0.0, "pool": 0.0}
